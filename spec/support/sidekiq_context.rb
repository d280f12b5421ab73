# frozen_string_literal: true

# One real `sidekiq` process shared by a group's examples, heartbeating
# before each (the suite flushes Redis between examples), stopped by pid
# after the group. `events` are what the jobs of spec/support/app.rb report.
RSpec.shared_context "a sidekiq process" do |concurrency: 5|
  before(:all) do
    TestRedis.flush
    @sidekiq = SidekiqProcess.new(redis_url: TestRedis.url, concurrency: concurrency).start
  end

  after(:all) { @sidekiq&.stop }

  before { wait_for(15, "heartbeat") { @sidekiq.identity } }

  def events = redis.lrange("test:events", 0, -1)
end
