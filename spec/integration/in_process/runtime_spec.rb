# frozen_string_literal: true

RSpec.describe "the per-process runtime" do
  # A thread may end between the listing and the read.
  def os_threads = Dir["/proc/self/task/*/comm"].filter_map { |f| File.read(f).strip rescue nil } # rubocop:disable Style/RescueModifier

  def sleepy_class
    Class.new do
      include Sidekiq::Worker
      include Killer::Cancellable
      def self.name = "Sleepy"
      def perform(started) = (started << 1; sleep 0.01 while true) # rubocop:disable Style/InfiniteLoop, Style/Semicolon
    end
  end

  def running_sleepy
    started = Queue.new
    job = sleepy_class.new.tap { |j| j.jid = SecureRandom.hex(12) }
    thread = Thread.new { job.perform(started) }
    started.pop
    [job, thread]
  end

  it "adds one Ruby thread and one native thread to a server process, and removes both on stop" do
    # Earlier examples' dispatchers may still sit in Ruby's thread cache.
    wait_for(6, "parked threads to go") { os_threads.none? { |n| n.start_with?("killer") } }
    ruby_before = Thread.list.size
    native_before = os_threads
    start_killer
    expect(Thread.list.size).to eq(ruby_before + 1)
    expect(Thread.list.map(&:name)).to include("killer-dispatcher")
    expect(os_threads - native_before).to contain_exactly("killer-dispatch", "killer-watcher")

    Killer.stop # bounded by design: it never waits on a thread for long
    expect(Thread.list.size).to eq(ruby_before)
    # Joined; /proc may list a thread for a moment after it is joined.
    expect(wait_for(5) { !os_threads.include?("killer-watcher") }).to be(true)
    # Ruby 3.1 parks a finished thread's OS thread for reuse for a few seconds.
    expect(wait_for(6) { os_threads.none? { |n| n.start_with?("killer") } }).to be(true)
  end

  it "starts no thread in a console: Killer.cancel and Killer.status are Redis calls and nothing more" do
    before = [Thread.list.size, os_threads.size]
    Killer.cancel("console-jid")
    expect(Killer.status("console-jid")).to eq(:requested)
    expect([Thread.list.size, os_threads.size]).to eq(before)
  end

  it "keeps the dispatcher killable while it waits in Rust (the unblocking function works)" do
    start_killer
    dispatcher = Thread.list.find { |t| t.name == "killer-dispatcher" }
    dispatcher.kill
    # Without an unblocking function the wait in Rust would never end.
    expect(dispatcher.join(10)).to be_truthy
    # A dead dispatcher is replaced: the next job gets a working runtime.
    expect(Killer.configuration.runtime_if_started).to be_nil
    start_killer
    job, thread = running_sleepy
    expect(Killer.cancel(job.jid, wait: 5)).to eq(:cancelled)
    expect(thread.join(2)).to be_truthy
  end

  it "lets a process exit promptly while the dispatcher waits" do
    script = <<~RUBY
      $LOAD_PATH.unshift(#{File.expand_path("../../../lib", __dir__).inspect})
      require "killer"
      Killer.configure { |c| c.logger = Logger.new(File::NULL) }
      Sidekiq.logger.level = Logger::WARN
      Killer.start
      sleep 0.2
      puts "exiting"
    RUBY
    # Without an unblocking function the exit would hang for good; 20 s
    # only bounds a slow machine.
    reader, writer = IO.pipe
    pid = Process.spawn({ "REDIS_URL" => TestRedis.url }, "ruby", "-e", script, out: writer)
    writer.close
    status = wait_for(20, "the process to exit") { Process.wait2(pid, Process::WNOHANG)&.last }
    expect(reader.read).to eq("exiting\n")
    expect(status.success?).to be(true)
  ensure
    Process.kill("KILL", pid) if pid && !status rescue nil # rubocop:disable Style/RescueModifier
  end

  it "starts a fresh runtime in a forked child, and the child's cancels work" do
    start_killer
    parent_runtime = Killer.configuration.runtime
    reader, writer = IO.pipe
    pid = fork do
      reader.close
      result =
        begin
          expect_new = Killer.configuration.runtime_if_started.nil?
          Killer.start
          child_runtime = Killer.configuration.runtime
          job, thread = running_sleepy
          status = Killer.cancel(job.jid, wait: 5)
          [expect_new, !child_runtime.equal?(parent_runtime), status, thread.join(2) ? :stopped : :running].inspect
        rescue Exception => e # rubocop:disable Lint/RescueException
          "#{e.class}: #{e.message}"
        end
      writer.write(result)
      writer.close
      Killer.stop
      exit!(0)
    end
    writer.close
    Process.wait(pid)
    expect(reader.read).to eq("[true, true, :cancelled, :stopped]")
    # The parent's runtime is untouched.
    job, thread = running_sleepy
    expect(Killer.cancel(job.jid, wait: 5)).to eq(:cancelled)
    expect(thread.join(2)).to be_truthy
  end

  it "logs each step in the logger with the jid and the event" do
    log = capture_log
    start_killer
    job, thread = running_sleepy
    Killer.cancel(job.jid, wait: 5)
    thread.join(2)
    expect(log.string).to match(/killer: cancel requested.*event=cancel\.delivered jid=#{job.jid}/)
    expect(log.string).to match(/killer: job stopped by Killer::Cancelled.*event=cancel\.done class=Sleepy jid=#{job.jid}/)
  end

  context "when Redis goes away" do
    around do |example|
      @server = RedisServer.new.start
      example.run
    ensure
      @server.stop
    end

    it "keeps running jobs, and applies a cancel once Redis is back" do
      log = capture_log
      Killer.configure do |c|
        c.redis_url = @server.url
        c.network_timeout = 0.3
      end
      start_killer_on(@server)
      @server.stop
      job, thread = running_sleepy
      expect { Killer.cancel(job.jid) }.to raise_error(Killer::ConnectionError)
      wait_for(10, "the watcher to notice") { log.string.include?("event=redis.down") }
      expect(thread).to be_alive # jobs keep running; nothing is raised into them
      expect(log.string).to match(/cannot reach Redis.*jobs keep running/)

      @server.start
      expect(Killer.cancel(job.jid, wait: 10)).to eq(:cancelled)
      expect(thread.join(2)).to be_truthy
      expect(log.string).to match(/Redis reachable again/)
    end

    it "still runs jobs when Redis was never there" do
      @server.stop
      Killer.configure do |c|
        c.redis_url = @server.url
        c.network_timeout = 0.2
      end
      Killer.start
      klass = Class.new { include Killer::Cancellable; def perform(x) = x * 2 } # rubocop:disable Style/Semicolon
      expect(klass.new.tap { |j| j.define_singleton_method(:jid) { "x" } }.perform(21)).to eq(42)
    end

    def start_killer_on(server)
      Killer.configure { |c| c.poll_interval = 0.2 }
      Killer.start
      wait_for(5, "subscribe") { server.redis.pubsub("numsub", "killer:v1:cancel").last.to_i >= 1 }
    end
  end
end

RSpec.describe Killer::CancelMiddleware do
  let(:chain) do
    Sidekiq::Middleware::Chain.new.tap { |c| c.add(described_class, some: "option") }
  end

  def invoke(job, &block)
    Thread.new do
      Thread.current.report_on_exception = false
      chain.invoke(Object.new, job, "default", &block)
    end
  end

  it "makes a plain job cancellable by its jid" do
    start_killer
    started = Queue.new
    thread = invoke({ "jid" => "plain-1", "class" => "PlainJob", "args" => [] }) do
      started << 1
      sleep 0.01 while true # rubocop:disable Style/InfiniteLoop
    end
    started.pop
    expect(Killer.cancel("plain-1", wait: 5)).to eq(:cancelled)
    expect(thread.value).to be_nil
  end

  it "accepts the ActiveJob job_id of a job run through Sidekiq's JobWrapper" do
    start_killer
    started = Queue.new
    payload = {
      "jid" => "sk-jid", "class" => "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper",
      "wrapped" => "ExportJob", "args" => [{ "job_class" => "ExportJob", "job_id" => "aj-uuid-1", "arguments" => [] }]
    }
    thread = invoke(payload) do
      started << 1
      sleep 0.01 while true # rubocop:disable Style/InfiniteLoop
    end
    started.pop
    expect(Killer.cancel("aj-uuid-1", wait: 5)).to eq(:cancelled)
    expect(thread.value).to be_nil
  end

  it "registers once when the job class is also Cancellable" do
    start_killer
    klass = Class.new { include Killer::Cancellable; attr_accessor :jid; def perform = Killer.configuration.runtime.running } # rubocop:disable Style/Semicolon
    job = klass.new.tap { |j| j.jid = "both" }
    count = chain.invoke(job, { "jid" => "both", "class" => "X", "args" => [] }, "default") { job.perform }
    expect(count).to eq(1)
  end
end
