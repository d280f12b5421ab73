# frozen_string_literal: true

require "redis"
require "socket"

# A redis-server of the benchmark's own, on a free port. Benchmarks flush
# their database between runs, so they never use the Redis in REDIS_URL.
module ThrowawayRedis
  module_function

  # [url, pid]
  def start
    port = TCPServer.new("127.0.0.1", 0).then { |s| s.addr[1].tap { s.close } }
    pid = Process.spawn("redis-server", "--port", port.to_s, "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", out: File::NULL, err: File::NULL)
    url = "redis://127.0.0.1:#{port}/0"
    sleep 0.05 until (Redis.new(url: url).ping rescue nil) # rubocop:disable Style/RescueModifier
    [url, pid]
  end

  def stop(pid)
    return unless pid

    Process.kill("KILL", pid)
    Process.wait(pid)
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  end
end
