# frozen_string_literal: true

# One measurement of bench/gvl_switch.rb, in a process of its own (a thread
# event hook, once added, stays for the VM's life):
#
#   ruby -I LIB gvl_switch_worker.rb on|off ROUNDS REDIS_URL
#
# Prints the CPU time in ns per round trip of each loop, with this process's
# Killer runtime started and its express lane on or off.
require "killer"
require "logger"

express, rounds, url = ARGV
rounds = Integer(rounds)
Killer.configure do |c|
  c.redis_url = url
  c.express = express == "on"
  c.logger = Logger.new(File::NULL)
end
Killer.start

def cpu = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID, :nanosecond)

# The CPU time per round of the block, after a tenth as many to warm up.
def per_round(rounds)
  (rounds / 10).times { yield }
  from = cpu
  rounds.times { yield }
  (cpu - from).fdiv(rounds)
end

# A write and a read: each gives the GVL away and takes it back.
r, w = IO.pipe
pipe = per_round(rounds) do
  w.write("x")
  r.read(1)
end

# Two threads passing a token: each pass moves the GVL to the other.
ping = Queue.new
pong = Queue.new
echo = Thread.new { loop { pong << ping.pop } }
queue = per_round(rounds / 4) do
  ping << 1
  pong.pop
end
echo.kill
puts format("%.1f %.1f", pipe, queue)
