# frozen_string_literal: true

require "socket"
require "redis"

# Picks a free port on loopback.
module FreePort
  def self.pick
    server = TCPServer.new("127.0.0.1", 0)
    server.addr[1]
  ensure
    server&.close
  end
end

# A real redis-server started by a test, stopped by pid.
class RedisServer
  attr_reader :port, :pid

  def initialize(port = FreePort.pick)
    @port = port
    @pid = nil
  end

  def url(db = 0) = "redis://127.0.0.1:#{port}/#{db}"

  def start
    @pid = Process.spawn("redis-server", "--port", port.to_s, "--bind", "127.0.0.1",
                         "--save", "", "--appendonly", "no",
                         out: File::NULL, err: File::NULL)
    deadline = Time.now + 10
    until ping
      raise "redis-server did not start on #{port}" if Time.now > deadline

      sleep 0.02
    end
    self
  end

  def stop
    return unless @pid

    Process.kill("KILL", @pid)
    Process.wait(@pid)
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  ensure
    @pid = nil
  end

  def ping
    Redis.new(url: url, timeout: 0.2).then { |r| r.ping.tap { r.close } }
  rescue StandardError
    false
  end

  def redis = Redis.new(url: url)
end

# The suite's shared server.
module TestRedis
  class << self
    attr_reader :server

    def start = (@server = RedisServer.new.start)
    def stop = @server&.stop
    def url = @server.url
    def redis = (@redis ||= @server.redis)
    def flush = redis.flushall
  end
end
