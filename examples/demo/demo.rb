# frozen_string_literal: true

# bin/demo: tells, step by step, what sidekiq-killer does, against a real
# Redis and a real Sidekiq process it starts and stops itself.
require "killer"
require "sidekiq/api"
require_relative "app" # the console knows the job classes, as a Rails console would
require "socket"
require "tmpdir"
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

module Demo
  module_function

  def say(text) = puts("\n\e[1m▸ #{text}\e[0m")
  def note(text) = puts("  #{text}")
  def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

  def free_port
    s = TCPServer.new("127.0.0.1", 0)
    s.addr[1]
  ensure
    s&.close
  end

  def wait_for(seconds, what)
    deadline = now + seconds
    until (v = yield)
      raise "timed out waiting for #{what}" if now > deadline

      sleep 0.02
    end
    v
  end

  def start_redis
    return [ENV["REDIS_URL"], nil] if ENV["REDIS_URL"]

    port = free_port
    pid = Process.spawn("redis-server", "--port", port.to_s, "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", out: File::NULL, err: File::NULL)
    url = "redis://127.0.0.1:#{port}/0"
    wait_for(10, "redis-server") { Redis.new(url: url).ping rescue nil } # rubocop:disable Style/RescueModifier
    [url, pid]
  end

  def start_sidekiq(url, log)
    pid = Process.spawn({ "REDIS_URL" => url, "RUBYLIB" => File.expand_path("../../lib", __dir__) },
                        "sidekiq", "-r", File.expand_path("app.rb", __dir__), "-c", "3", "-t", "5",
                        out: log, err: %i[child out])
    wait_for(20, "sidekiq to start") { Sidekiq::ProcessSet.new.any? { |p| p["pid"] == pid } }
    pid
  end

  def stop(pid, signal = "TERM")
    return unless pid

    Process.kill(signal, pid)
    Process.wait(pid)
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  end

  def killer_lines(log, jid) = File.readlines(log).grep(/killer:.*|jid=#{jid}/).grep(/#{jid}/)
end

include Demo # rubocop:disable Style/MixinUsage
redis_pid = sidekiq_pid = nil
log = File.join(Dir.mktmpdir("killer-demo"), "sidekiq.log")
begin
  url, redis_pid = start_redis
  ENV["REDIS_URL"] = url
  say "Redis at #{url}#{redis_pid ? " (a throwaway redis-server, pid #{redis_pid})" : " (from REDIS_URL)"}"
  Sidekiq.redis(&:flushdb) if redis_pid

  sidekiq_pid = start_sidekiq(url, log)
  say "A real Sidekiq #{Sidekiq::VERSION} process is up: pid #{sidekiq_pid}, 3 threads, app examples/demo/app.rb"
  note "Its workers only `include Killer::Cancellable`; nothing else in them changed."

  jid = ExportJob.perform_async(1200)
  say "Enqueued ExportJob #{jid}: 1200 rows, about a minute of work"
  wait_for(10, "the export to start") { Sidekiq.redis { |r| r.get("demo:progress:#{jid}").to_i >= 10 } }
  note "It is running: #{Sidekiq.redis { |r| r.get("demo:progress:#{jid}") }} rows done so far."

  say "From this console (any machine that reaches Redis): Killer.cancel(\"#{jid}\", wait: 5)"
  t0 = now
  result = Killer.cancel(jid, wait: 5)
  note "=> #{result.inspect} after #{((now - t0) * 1000).round(1)} ms"
  rows = Sidekiq.redis { |r| r.get("demo:progress:#{jid}") }
  sleep 0.3
  note "Rows done stayed at #{rows} (now #{Sidekiq.redis { |r| r.get("demo:progress:#{jid}") }}); " \
       "its `rescue => e` swallowed nothing: #{Sidekiq.redis { |r| r.get("demo:done:#{jid}") }.inspect}"
  note "Retries: #{Sidekiq::RetrySet.new.size}, Dead: #{Sidekiq::DeadSet.new.size}. A cancelled job is acknowledged, not failed."
  note "Sidekiq's log says:"
  killer_lines(log, jid).each { |l| note "  #{l.strip}" }

  crunch = CrunchJob.perform_async
  say "Enqueued CrunchJob #{crunch}: a pure-Ruby loop that never sleeps and never checks anything"
  wait_for(10, "the crunch to start") { Sidekiq.redis { |r| r.get("demo:progress:#{crunch}") } }
  sleep 0.5
  t0 = now
  result = Killer.cancel(crunch, wait: 5)
  note "Killer.cancel(\"#{crunch}\", wait: 5) => #{result.inspect} after #{((now - t0) * 1000).round(1)} ms " \
       "(a CPU-bound thread gives up Ruby's GVL once per 100 ms timeslice)"

  early = ExportJob.perform_in(2, 10)
  Killer.cancel(early)
  say "Scheduled ExportJob #{early} to run in 2 s, and cancelled it before it started"
  wait_for(15, "the scheduled job to come due") { Sidekiq::ScheduledSet.new.size.zero? && Sidekiq::Queue.new.size.zero? }
  sleep 0.5
  note "It came due and never ran its body: progress #{Sidekiq.redis { |r| r.get("demo:progress:#{early}") }.inspect}, " \
       "status #{Killer.status(early).inspect}"

  hello = HelloJob.perform_async("demo")
  say "The same process carries on: HelloJob #{hello}"
  note wait_for(10, "hello") { Sidekiq.redis { |r| r.get("demo:done:#{hello}") } }
  note "Process #{sidekiq_pid} alive: #{Sidekiq::ProcessSet.new.any? { |p| p["pid"] == sidekiq_pid }}"

  say "Stopping Sidekiq with TERM (its watcher and dispatcher threads stop with it)"
  t0 = now
  stop(sidekiq_pid)
  sidekiq_pid = nil
  note "Exited in #{((now - t0) * 1000).round} ms."
  say "Done. Full Sidekiq log: #{log}"
ensure
  stop(sidekiq_pid, "KILL") if sidekiq_pid
  stop(redis_pid, "KILL") if redis_pid
end
