# frozen_string_literal: true

require_relative "../support/active_job_app"

# Real ActiveJob jobs (Debian's ruby-activejob, no Rails) enqueued through
# Sidekiq's adapter and run by a real `sidekiq` process: the class includes
# Killer::Cancellable; Sidekiq sees only its JobWrapper.
RSpec.describe "cancelling ActiveJob jobs run by Sidekiq" do
  def start_sidekiq(env = {})
    TestRedis.flush
    @sidekiq = SidekiqProcess.new(redis_url: TestRedis.url, app: File.expand_path("../support/active_job_app.rb", __dir__),
                                  env: env).start
  end

  after { @sidekiq&.stop }

  def events = redis.lrange("test:events", 0, -1)
  def wait_started(id) = wait_for(15, "job #{id} to start") { events.include?("started:#{id}") }

  context "under Killer::MemoryMiddleware alone (the wrapper registers the job; the class arms it)" do
    before { start_sidekiq("KILLER_TEST_MEMORY" => JSON.generate(max_rss_mb: 100_000)) }

    it "stops a running job named by its ActiveJob job_id, reported as cancelled, not finished" do
      job = ExportJob.perform_later(60)
      wait_started(job.job_id)
      expect(Killer.cancel(job.job_id, wait: 5)).to eq(:cancelled)
      wait_for(5, "the job's ensure") { events.include?("ensure:#{job.job_id}") }
      expect(events).not_to include("finished:#{job.job_id}")
      await_log_lines(@sidekiq, /job stopped by Killer::Cancelled/, jid: job.job_id)
      expect(sidekiq_stats).to include(failed: 0, retries: 0, dead: 0)
    end

    it "never runs the body of a job cancelled before it was enqueued" do
      running = ExportJob.perform_later(60)
      wait_started(running.job_id)
      job = ExportJob.new(1)
      expect(cancel_before_start(job.job_id, running: running.job_id)).to eq(:cancelled)
      job.enqueue
      wait_for(15, "the job to be skipped") { Killer.status(job.job_id) == :cancelled }
      # The next job on the same process runs: the skip ended cleanly.
      after = ExportJob.perform_later(0)
      wait_for(15, "the next job") { events.include?("finished:#{after.job_id}") }
      expect(events).not_to include("started:#{job.job_id}")
      expect(sidekiq_stats).to include(failed: 0, retries: 0, dead: 0)
    end
  end

  context "with no Killer middleware (the class registers the job itself)" do
    before { start_sidekiq }

    it "stops a running job named by Sidekiq's jid (ActiveJob's provider_job_id)" do
      job = ExportJob.perform_later(60)
      wait_started(job.job_id)
      expect(job.provider_job_id).to match(/\A\h{24}\z/)
      expect(Killer.cancel(job.provider_job_id, wait: 5)).to eq(:cancelled)
      wait_for(5, "the job's ensure") { events.include?("ensure:#{job.job_id}") }
      expect(events).not_to include("finished:#{job.job_id}")
      expect(sidekiq_stats).to include(failed: 0, retries: 0, dead: 0)
    end
  end
end
