# frozen_string_literal: true

# bin/demo: tells, step by step, what sidekiq-killer does, against a real
# Redis and real Sidekiq processes it starts and stops itself: cancelling
# live jobs, then a bloated process recycling itself.
require "killer"
require "sidekiq/api"
require "killer/web"
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

  def start_sidekiq(url, log, env: {}, queues: %w[default])
    pid = Process.spawn({ "REDIS_URL" => url, "RUBYLIB" => File.expand_path("../../lib", __dir__) }.merge(env),
                        "sidekiq", "-r", File.expand_path("app.rb", __dir__), "-c", "3", "-t", "5",
                        *queues.flat_map { |q| ["-q", q] }, out: log, err: %i[child out])
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

  def alive?(pid)
    Process.waitpid(pid, Process::WNOHANG).nil?
  rescue Errno::ECHILD
    false
  end

  # Sidekiq's own log lines, without its timestamp and pid prefix.
  def tail(log, pattern) = File.readlines(log).grep(pattern).map { |l| l.sub(/\A\S+ pid=\d+ tid=\S+ /, "").strip }
end

include Demo # rubocop:disable Style/MixinUsage
redis_pid = sidekiq_pid = bloated_pid = nil
dir = Dir.mktmpdir("killer-demo")
log = File.join(dir, "sidekiq.log")
bloated_log = File.join(dir, "sidekiq-bloated.log")
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

  limit = 300
  bloated_pid = start_sidekiq(url, bloated_log, env: { "DEMO_MAX_RSS_MB" => limit.to_s }, queues: %w[bloat])
  say "A second Sidekiq process, pid #{bloated_pid}, with Killer::MemoryMiddleware, max_rss_mb: #{limit}"
  note "It recycles itself only while another live process (pid #{sidekiq_pid}) can carry the load."
  sleep 3 # min_uptime, shortened for the demo: a process that boots big must not restart in a loop
  slow = SlowJob.set(queue: "bloat").perform_async(6)
  wait_for(10, "the slow job to start") { Sidekiq.redis { |r| r.get("demo:progress:#{slow}") } }
  bloat = BloatJob.set(queue: "bloat").perform_async(400)
  note "SlowJob #{slow} is running there (6 s of work); BloatJob #{bloat} now leaks 400 MB into the process."
  t0 = now
  wait_for(60, "the bloated process to exit") { !alive?(bloated_pid) }
  exited = now - t0
  bloated_pid = nil
  say "The bloated process recycled itself in #{exited.round(1)} s; its log:"
  tail(bloated_log, /killer:|Terminating|Bye/).each { |l| note "  #{l}" }
  note "SlowJob: #{Sidekiq.redis { |r| r.get("demo:done:#{slow}") }.inspect} (drained, not killed mid-job)"
  note "on_recycle was called with: #{Sidekiq.redis { |r| r.get("demo:recycled") }}"
  note "A process manager (systemd, Kubernetes) would now start a fresh one."
  hello = HelloJob.perform_async("after the recycle")
  note "Meanwhile pid #{sidekiq_pid} keeps working: #{wait_for(10, "hello") { Sidekiq.redis { |r| r.get("demo:done:#{hello}") } }}"

  say "What the Killer tab in Sidekiq's Web UI shows now (require \"killer/web\"; README, \"The Web tab\")"
  tab = Killer::Web::Overview.load(limit: 20)
  tab.cancels.first(3).each do |c|
    note "cancel #{c.jid} (#{c.class_name}) by #{c.by}: #{c.outcome}#{c.latency ? " after #{Killer::Web::Format.duration(c.latency)}" : ""}"
  end
  tab.recycles.reverse.each { |r| note "#{r.process} #{r.state}: #{r.message}" }
  tab.processes.each do |p|
    note "process #{p.identity}: #{p.busy}/#{p.concurrency} busy#{p.memory ? ", #{p.memory[:rss_mb]} MB" : ""}"
  end

  say "Stopping Sidekiq with TERM (its watcher and dispatcher threads stop with it)"
  t0 = now
  stop(sidekiq_pid)
  sidekiq_pid = nil
  note "Exited in #{((now - t0) * 1000).round} ms."
  say "Done. Full Sidekiq logs: #{log}, #{bloated_log}"
ensure
  stop(bloated_pid, "KILL") if bloated_pid
  stop(sidekiq_pid, "KILL") if sidekiq_pid
  stop(redis_pid, "KILL") if redis_pid
end
