# frozen_string_literal: true

# What the GVL express lane costs a process that cancels nothing. On Ruby
# >= 3.3 its chain is a thread event hook, which Ruby calls at every GVL
# switch behind a lock of its own; it is added only while a stop is young,
# so here, with no stop, both rows should match. (Added for the process's
# life, the first build of the chain cost 2,698 ns per pipe round trip
# against 2,257.) CPU time per round trip of a pipe write + read on one thread (each gives
# the GVL away and takes it back) and of a token passed between two threads
# through Queues, with Killer's runtime started and the lane on vs off.
# Each figure is the median of BENCH_ROUNDS processes, the settings taking
# turns. On Ruby < 3.3 both rows are the same code (no lane, no hook).
#
#   ruby -Ilib bench/gvl_switch.rb          # BENCH_TRIPS=200000 BENCH_ROUNDS=9
$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
require "etc"
require "open3"
require "killer"
require_relative "support/throwaway_redis"

TRIPS = Integer(ENV.fetch("BENCH_TRIPS", "200000"))
ROUNDS = Integer(ENV.fetch("BENCH_ROUNDS", "9"))
WORKER = File.expand_path("support/gvl_switch_worker.rb", __dir__)
LIB = File.expand_path("../lib", __dir__)

def median(values) = values.sort[values.size / 2]

url, redis_pid = ThrowawayRedis.start
samples = Hash.new { |h, k| h[k] = [] }
begin
  ROUNDS.times do |i|
    %w[on off].rotate(i % 2).each do |express|
      out, status = Open3.capture2({ "RUBYLIB" => nil }, "ruby", "-I", LIB, WORKER, express, TRIPS.to_s, url)
      raise "the #{express} worker failed:\n#{out}" unless status.success?

      samples[express] << out.split.map(&:to_f)
    end
  end
ensure
  ThrowawayRedis.stop(redis_pid)
end

puts "GVL switches with the express lane's hook (on) and without (off); " \
     "#{RUBY_DESCRIPTION.split.first(2).join(" ")}, #{Etc.nprocessors} cores, " \
     "express lane #{Killer::Native::EXPRESS ? "built in" : "not available on this Ruby"}, " \
     "median of #{ROUNDS} processes"
puts
puts "| express lane | pipe write + read, ns CPU | Queue ping-pong between 2 threads, ns CPU |"
puts "|---|---:|---:|"
%w[on off].each do |express|
  pipe = median(samples[express].map(&:first))
  queue = median(samples[express].map(&:last))
  puts format("| %s | %.0f | %.0f |", express, pipe, queue)
end
