# frozen_string_literal: true

RSpec.describe Killer::Cancellable do
  # A job class whose body reports where it is, defined per example.
  def job_class(&body)
    Class.new do
      include Sidekiq::Worker
      include Killer::Cancellable
      define_method(:perform, &body)
      def self.name = "SpecJob"
    end
  end

  def run_in_thread(job, *args)
    Thread.new do
      Thread.current.report_on_exception = false
      job.perform(*args)
    end
  end

  def with_jid(klass, jid = SecureRandom.hex(12))
    klass.new.tap { |j| j.jid = jid }
  end

  describe "wrapping" do
    it "wraps perform defined after the include, and perform_without_killer runs the body" do
      job = with_jid(job_class { |x| [:ran, x, Thread.current[:killer_job]&.in_body] })
      start_killer
      expect(job.perform(1)).to eq([:ran, 1, true]) # in its body's window
      expect(job.perform_without_killer(2)).to eq([:ran, 2, nil])
      expect(job.perform_with_killer(3)).to eq([:ran, 3, true])
    end

    it "wraps perform defined before the include and in subclasses calling super, registering once" do
      base = Class.new do
        include Sidekiq::Worker
        def perform(log) = log << [:base, Killer.configuration.runtime.running]
      end
      base.include(described_class)
      sub = Class.new(base) do
        def perform(log)
          log << [:sub, Killer.configuration.runtime.running]
          super
        end
      end
      start_killer
      log = []
      with_jid(sub).perform(log)
      expect(log).to eq([[:sub, 1], [:base, 1]])
    end

    it "passes keyword arguments and blocks through" do
      klass = Class.new do
        include Killer::Cancellable
        def perform(a, b:, &blk) = [a, b, blk.call]
      end
      expect(klass.new.perform(1, b: 2) { 3 }).to eq([1, 2, 3])
    end

    it "accepts ActiveJob's job_id and provider_job_id as ids" do
      klass = Class.new do
        include Killer::Cancellable
        attr_accessor :job_id, :provider_job_id
        def perform = killer_ids_for_spec
        def killer_ids_for_spec = send(:killer_job_ids)
      end
      job = klass.new.tap { |j| j.job_id = "aj-1"; j.provider_job_id = "sk-1" } # rubocop:disable Style/Semicolon
      expect(job.perform).to eq(%w[aj-1 sk-1])
    end

    it "starts no thread outside a Sidekiq server unless asked" do
      before = Thread.list.size
      expect(with_jid(job_class { :ok }).perform).to eq(:ok)
      expect(Thread.list.size).to eq(before)
      expect(Killer.configuration.runtime_if_started).to be_nil
    end
  end

  describe "cancelling a running job" do
    # How fast: bench/cancel_latency.rb (a bound here would flake on a loaded machine).
    it "stops it, returns nil, and records :cancelled" do
      started = Queue.new
      job = with_jid(job_class { started << 1; sleep 0.01 while true }) # rubocop:disable Style/InfiniteLoop
      start_killer
      thread = run_in_thread(job)
      started.pop
      expect(Killer.cancel(job.jid)).to be(true)
      expect(thread.join(30)).to be_truthy
      expect(thread.value).to be_nil
      expect(wait_for(5) { Killer.status(job.jid) == :cancelled && :cancelled }).to eq(:cancelled)
    end

    it "is not swallowed by `rescue => e` in the job" do
      started = Queue.new
      swallowed = []
      job = with_jid(job_class do
        started << 1
        loop do
          sleep 0.01
        rescue => e # rubocop:disable Style/RescueStandardError
          swallowed << e
        end
      end)
      start_killer
      thread = run_in_thread(job)
      started.pop
      expect(Killer.cancel(job.jid, wait: 5)).to eq(:cancelled)
      expect(thread.join(2)).to be_truthy
      expect(swallowed).to be_empty
    end

    it "raises again after grace when the job rescues Exception, and logs it with the jid" do
      log = capture_log
      started = Queue.new
      ignored = []
      job = with_jid(job_class do
        started << 1
        begin
          sleep 0.01 while true # rubocop:disable Style/InfiniteLoop
        rescue Exception => e # rubocop:disable Lint/RescueException
          ignored << e.attempt
          retry if ignored.size < 2
          raise
        end
      end)
      start_killer(grace: 0.2)
      thread = run_in_thread(job)
      started.pop
      Killer.cancel(job.jid)
      expect(thread.join(5)).to be_truthy
      expect(ignored).to eq([1, 2])
      # The dispatcher writes the line after the raise, so as not to delay it.
      wait_for(5, "the warning") { log.string.include?("raising again") }
      expect(log.string).to match(/still running .* raising again.*jid=#{job.jid}/)
    end

    it "never starts a job whose cancel was recorded before it started" do
      ran = []
      job = with_jid(job_class { ran << :body })
      start_killer
      Killer.cancel(job.jid)
      wait_for(5) { Killer.configuration.runtime.instance_variable_get(:@native).known_cancels == 1 }
      expect(job.perform).to be_nil
      expect(ran).to be_empty
      expect(wait_for(5) { Killer.status(job.jid) == :cancelled }).to be(true)
    end

    it "leaves other jobs, and the next job on the same thread, alone" do
      gate = Queue.new
      klass = job_class { |n| gate.pop if n.zero?; :"done#{n}" } # rubocop:disable Style/Semicolon
      start_killer
      victim = with_jid(klass)
      bystander = with_jid(klass)
      bystander_thread = run_in_thread(bystander, 0)
      worker = Thread.new do
        results = [victim.perform(0)]
        results << with_jid(klass).perform(1)
        results
      end
      wait_for { Killer.configuration.runtime.running == 2 }
      Killer.cancel(victim.jid, wait: 5)
      expect(worker.value).to eq([nil, :done1])
      gate << :go
      expect(bystander_thread.value).to eq(:done0)
      expect(Killer.status(bystander.jid)).to be_nil
    end

    it "answers :finished at once for a job that ended just before the cancel" do
      start_killer
      job = with_jid(job_class { :done })
      expect(job.perform).to eq(:done)
      # Without the answer at once, the status would stay :requested past `wait`.
      expect(Killer.cancel(job.jid, wait: 5)).to eq(:finished)
    end

    it "lands a cancel that arrived inside Killer.critical as the block ends" do
      start_killer
      job = with_jid(job_class { Killer.critical { Killer.cancel(jid); sleep 0.3 }; :after }) # rubocop:disable Style/Semicolon
      expect(job.perform).to be_nil
      expect(wait_for(5) { Killer.status(job.jid) == :cancelled }).to be(true)
    end
  end

  describe "Killer.critical and Killer.checkpoint!" do
    it "critical defers a cancel until the block ends" do
      steps = []
      job = with_jid(job_class do
        Killer.critical do
          Killer.cancel(jid)
          sleep 0.3 # the raise arrives here and waits
          steps << :critical_done
        end
        steps << :after_critical
      end)
      start_killer
      expect(job.perform).to be_nil
      expect(steps).to eq([:critical_done])
    end

    it "checkpoint! raises inside critical once a cancel has reached the job" do
      loops = 0
      job = with_jid(job_class do
        Killer.critical do
          Killer.cancel(jid)
          loop do
            loops += 1
            Killer.checkpoint!
            sleep 0.01
          end
        end
      end)
      start_killer
      expect(job.perform).to be_nil
      expect(loops).to be_between(1, 100)
    end

    it "checkpoint! is a no-op outside a job or without a cancel" do
      expect(Killer.checkpoint!).to be_nil
      start_killer
      expect(with_jid(job_class { Killer.checkpoint!; :ok }).perform).to eq(:ok) # rubocop:disable Style/Semicolon
    end
  end
end
