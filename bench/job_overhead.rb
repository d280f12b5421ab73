# frozen_string_literal: true

# What Killer costs a job, in CPU time and in calls into the native
# library, against the same job without Killer: a no-op job run through
# Sidekiq's server middleware chain, as Killer::Cancellable, under
# Killer::MemoryMiddleware, and under both. With BENCH_BEFORE=<git rev>,
# the same table for that revision of the gem, in the same run (built once
# into tmp/bench-before/<rev>), so a change is measured against what it
# replaced.
#
# Each figure is the median of BENCH_ROUNDS processes, the setups taking
# turns so that drift on the machine hits them alike; a process's CPU time
# over its jobs (after a warm-up) is steadier than wall-clock on a shared
# machine, but still moves by tens of percent between processes. With
# BENCH_INSTRUCTIONS=1 (needs valgrind), a second table counts the
# instructions each job executes (callgrind, every thread of the process,
# the difference between a run of 30,000 jobs and one of 10,000): the same
# on every run, so a change of a few hundred instructions shows.
#
#   ruby -Ilib bench/job_overhead.rb      # BENCH_JOBS=200000 BENCH_ROUNDS=7 BENCH_BEFORE= BENCH_INSTRUCTIONS=
$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
require "etc"
require "open3"
require "fileutils"
require_relative "support/throwaway_redis"

JOBS = Integer(ENV.fetch("BENCH_JOBS", "200000"))
ROUNDS = Integer(ENV.fetch("BENCH_ROUNDS", "7"))
BEFORE = ENV.fetch("BENCH_BEFORE", "")
ROOT = File.expand_path("..", __dir__)
WORKER = File.expand_path("support/job_overhead_worker.rb", __dir__)
VARIANTS = {
  "plain" => "plain Sidekiq job (no Killer)",
  "cancellable" => "Killer::Cancellable job",
  "memory" => "plain job under Killer::MemoryMiddleware",
  "both" => "Killer::Cancellable job under Killer::MemoryMiddleware"
}.freeze

# The lib of revision `rev`, compiled once under tmp/bench-before.
def before_lib(rev)
  dir = File.join(ROOT, "tmp", "bench-before", rev)
  unless File.exist?(File.join(dir, "lib", "killer", "killer.so"))
    FileUtils.rm_rf(dir)
    system("git", "-C", ROOT, "worktree", "add", "--detach", "--force", dir, rev, exception: true, out: File::NULL, err: File::NULL)
    system({ "CARGO_TARGET_DIR" => File.join(ROOT, "tmp", "bench-before", "target") }, "rake", "-q", "compile",
           chdir: dir, exception: true, out: File::NULL)
  end
  File.join(dir, "lib")
end

def median(values) = values.sort[values.size / 2]

# Instructions the process executes for `jobs` jobs of `variant` (and its
# start, which the difference of two runs cancels out).
def instructions(lib, variant, jobs, url)
  out, status = Open3.capture2e({ "RUBYLIB" => nil }, "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                                "ruby", "-I", lib, WORKER, variant, jobs.to_s, url)
  raise "valgrind #{variant} failed:\n#{out}" unless status.success?

  Integer(out[/Collected : (\d+)/, 1])
end

# The worker runs a tenth more jobs to warm up.
def instructions_per_job(lib, variant, url)
  (instructions(lib, variant, 30_000, url) - instructions(lib, variant, 10_000, url)) / 22_000
end

url, redis_pid = ThrowawayRedis.start
libs = { "this checkout" => File.join(ROOT, "lib") }
libs = { "before (#{BEFORE})" => before_lib(BEFORE) }.merge(libs) unless BEFORE.empty?
samples = Hash.new { |h, k| h[k] = [] }
ROUNDS.times do
  libs.each do |label, lib|
    VARIANTS.each_key do |variant|
      out, status = Open3.capture2({ "RUBYLIB" => nil }, "ruby", "-I", lib, WORKER, variant, JOBS.to_s, url)
      raise "#{label} #{variant} failed:\n#{out}" unless status.success?

      cpu, calls = out.split.map(&:to_f)
      samples[[label, variant]] << [cpu, calls]
    end
  end
end
counted = {}
if ENV["BENCH_INSTRUCTIONS"] == "1"
  libs.each { |label, lib| VARIANTS.each_key { |v| counted[[label, v]] = instructions_per_job(lib, v, url) } }
end
ThrowawayRedis.stop(redis_pid)

puts "| gem | job | CPU µs/job | Killer's own (µs/job) | native calls per job |"
puts "|---|---|---|---|---|"
libs.each_key do |label|
  plain = median(samples[[label, "plain"]].map(&:first))
  VARIANTS.each do |variant, name|
    cpu = median(samples[[label, variant]].map(&:first))
    calls = samples[[label, variant]].first.last
    own = variant == "plain" ? "—" : format("%+.2f", cpu - plain)
    puts format("| %s | %s | %.2f | %s | %s |", label, name, cpu, own, calls.zero? ? "0" : calls.round(1).to_s)
  end
end
unless counted.empty?
  puts
  puts "| gem | job | instructions/job | Killer's own |"
  puts "|---|---|---|---|"
  libs.each_key do |label|
    plain = counted[[label, "plain"]]
    VARIANTS.each do |variant, name|
      own = variant == "plain" ? "—" : format("%+d", counted[[label, variant]] - plain)
      puts format("| %s | %s | %d | %s |", label, name, counted[[label, variant]], own)
    end
  end
end
puts
puts "#{JOBS} jobs per process, median of #{ROUNDS} processes per row; #{Etc.nprocessors} CPUs, " \
     "#{RUBY_DESCRIPTION.split.first(2).join(" ")}, Sidekiq #{`ruby -e 'require "sidekiq"; print Sidekiq::VERSION'`}"
