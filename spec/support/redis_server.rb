# frozen_string_literal: true

require "json"
require "socket"
require "tmpdir"

# Picks a free port on loopback.
module FreePort
  def self.pick
    server = TCPServer.new("127.0.0.1", 0)
    server.addr[1]
  ensure
    server&.close
  end
end

# A real redis-server started by a test, stopped by pid. Plain TCP by
# default; `tls:` (a TestCA) serves TLS only, `unixsocket: true` a socket
# only, `password:` requires one, `replica_of:` (a RedisServer) replicates.
class RedisServer
  attr_reader :port, :pid, :password, :path

  def initialize(port = FreePort.pick, tls: nil, client_certs: false, unixsocket: false, password: nil,
                 replica_of: nil, args: [])
    @port = port
    @tls = tls
    @client_certs = client_certs
    @password = password
    @replica_of = replica_of
    @args = args
    @dir = Dir.mktmpdir("killer-redis")
    @path = File.join(@dir, "redis.sock") if unixsocket
    @pid = nil
  end

  # The URL a user would write (no password: see #client_options).
  def url(db = 0)
    return "unix://#{@path}?db=#{db}" if @path

    "#{@tls ? "rediss" : "redis"}://127.0.0.1:#{port}/#{db}"
  end

  # What the specs' own client needs to log in.
  def client_options
    options = @path ? { path: @path } : { url: url }
    options[:password] = @password if @password
    if @tls
      options[:ssl_params] = { ca_file: @tls.ca_file }
      cert, key = @tls.client
      options[:ssl_params].merge!(cert: OpenSSL::X509::Certificate.new(File.read(cert)), key: OpenSSL::PKey.read(File.read(key))) if @client_certs
    end
    options
  end

  def start
    @pid = Process.spawn("redis-server", *server_args, out: File::NULL, err: File::NULL)
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
    SpecRedis.new(**client_options, timeout: 0.2).then { |r| r.ping.tap { r.close } }
  rescue StandardError
    false
  end

  def redis = SpecRedis.new(**client_options)

  private

  def server_args
    args = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", @dir]
    if @path
      args += ["--port", "0", "--unixsocket", @path, "--unixsocketperm", "700"]
    elsif @tls
      cert, key = @tls.server
      args += ["--port", "0", "--tls-port", port.to_s, "--tls-cert-file", cert, "--tls-key-file", key,
               "--tls-ca-cert-file", @tls.ca_file, "--tls-auth-clients", @client_certs ? "yes" : "no"]
    else
      args += ["--port", port.to_s]
    end
    args += ["--requirepass", @password] if @password
    args += ["--replicaof", "127.0.0.1", @replica_of.port.to_s] if @replica_of
    args + @args
  end
end

# The suite's shared server.
module TestRedis
  class << self
    attr_reader :server

    def start = (@server = RedisServer.new.start)
    def stop = @server&.stop
    def url = @server.url
    def redis = (@redis ||= @server.redis)

    # Empties Redis between examples but for Sidekiq's registry of live
    # processes: a shared `sidekiq` need not wait for its next heartbeat
    # (5 s in Sidekiq 6, 10 s in 7 and 8) to be seen again.
    # Processes of earlier examples that were killed are forgotten.
    def flush
      live = redis.smembers("processes").select { |id| alive?(redis.hget(id, "info")) }
      keep = ["processes", *live.flat_map { |id| [id, "#{id}:work", "#{id}:workers"] }]
      (redis.call("KEYS", "*") - keep).each_slice(500) { |keys| redis.call("DEL", *keys) }
      stale = redis.smembers("processes") - live
      redis.call("SREM", "processes", *stale) unless stale.empty?
    end

    def alive?(info)
      pid = info && JSON.parse(info)["pid"]
      pid && Process.kill(0, pid) && true
    rescue Errno::ESRCH, Errno::EPERM, JSON::ParserError
      false
    end
  end
end
