# frozen_string_literal: true

# What every benchmark measures with: the system-wide monotonic clock (one
# process's reading compares with another's), percentiles of a sorted list,
# and waiting for a condition with a bound.
module Timing
  module_function

  def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

  # The p-th percentile (0..1) of `sorted`.
  def percentile(sorted, p) = sorted[[(sorted.size * p).ceil - 1, 0].max]

  # The block's first truthy value, polled every `every` seconds; raises
  # naming `what` after `seconds`.
  def await(what, seconds = 30, every: 0.002)
    deadline = now + seconds
    until (v = yield)
      raise "timed out waiting for #{what}" if now > deadline

      sleep every
    end
    v
  end
end
