# frozen_string_literal: true

# One measurement of bench/job_overhead.rb, in a process of its own so that
# each lib (before, after) loads its own native library:
#
#   ruby -I LIB job_overhead_worker.rb VARIANT JOBS REDIS_URL
#
# Prints "cpu_us_per_job native_calls_per_job". The jobs run one after the
# other on this thread through Sidekiq's own server middleware chain, as a
# Sidekiq processor runs them, with this process's Killer runtime started.
require "killer"
require "logger"

variant, jobs, url = ARGV
jobs = Integer(jobs)

class PlainJob
  include Sidekiq::Job
  def perform(_n) = nil
end

class CancellableJob
  include Sidekiq::Job
  include Killer::Cancellable
  def perform(_n) = nil
end

Killer.configure do |c|
  c.redis_url = url
  c.logger = Logger.new(File::NULL)
end
Killer.start

klass, middleware =
  case variant
  when "plain" then [PlainJob, false]
  when "cancellable" then [CancellableJob, false]
  when "memory" then [PlainJob, true]
  when "both" then [CancellableJob, true]
  else abort "unknown variant #{variant}"
  end
chain = Sidekiq::Middleware::Chain.new
chain.add(Killer::MemoryMiddleware, max_rss_mb: 100_000) if middleware

# Counts calls into the native library's classes (what crosses the seam).
native = Killer::Native.constants.map { |c| Killer::Native.const_get(c) }.select { |c| c.is_a?(Class) && !(c < Struct) }
calls = 0
trace = TracePoint.new(:c_call) { |tp| calls += 1 if native.include?(tp.defined_class) }

run = lambda do |n|
  n.times do |i|
    worker = klass.new
    worker.jid = i.to_s(16)
    job = { "class" => klass.name, "jid" => worker.jid, "args" => [i], "queue" => "default" }
    chain.invoke(worker, job, "default") { worker.perform(i) }
  end
end
run.(jobs / 10) # warm up
trace.enable { run.(100) }
per_job_calls = calls / 100.0
GC.start
t0 = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID)
run.(jobs)
cpu = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID) - t0
puts format("%.3f %.1f", cpu / jobs * 1_000_000, per_job_calls)
Killer.stop
