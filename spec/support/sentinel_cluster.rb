# frozen_string_literal: true

require "tmpdir"

# One master, one replica and three sentinels (redis-server --sentinel) on
# free loopback ports, as a Sentinel deployment runs; every process is
# stopped by pid.
class SentinelCluster
  MASTER = "mymaster"

  attr_reader :master, :replica, :sentinel_ports

  def initialize(password: nil, sentinel_password: nil)
    @password = password
    @sentinel_password = sentinel_password
    @dir = Dir.mktmpdir("killer-sentinel")
    args = password ? ["--masterauth", password] : []
    @master = RedisServer.new(password: password, args: args)
    @replica = RedisServer.new(password: password, replica_of: @master, args: args)
    @sentinel_ports = Array.new(3) { FreePort.pick }
    @sentinel_pids = []
  end

  def start
    @master.start
    @replica.start
    @sentinel_ports.each { |port| @sentinel_pids << start_sentinel(port) }
    wait_until(20, "the sentinels to see the master, its replica and each other") { healthy? }
    self
  end

  def stop
    @sentinel_pids.each { |pid| kill(pid) }
    @sentinel_pids.clear
    @master.stop
    @replica.stop
  end

  # As Sidekiq's config.redis takes it: redis-client (Sidekiq 7/8) takes
  # sentinel_password:, redis-rb (Sidekiq 6) a password in each sentinel.
  def sidekiq_options
    nodes = @sentinel_ports.map { |p| { host: "127.0.0.1", port: p } }
    options = { url: "redis://#{MASTER}/0", sentinels: nodes }
    options[:password] = @password if @password
    if @sentinel_password && defined?(::RedisClient)
      options[:sentinel_password] = @sentinel_password
    elsif @sentinel_password
      nodes.each { |n| n[:password] = @sentinel_password }
    end
    options
  end

  # The port of the master the sentinels name now.
  def master_port
    Integer(sentinel.call("SENTINEL", "get-master-addr-by-name", MASTER).last)
  end

  # The RedisServer that is master now.
  def current_master = [@master, @replica].find { |s| s.port == master_port }

  # Forces a failover to the replica and waits until it is the master, the
  # old master follows it, and the sentinels agree.
  def failover!
    old = master_port
    wait_until(20, "a replica ready for failover") { replica_ready? }
    sentinel.call("SENTINEL", "FAILOVER", MASTER)
    wait_until(30, "the sentinels to switch master") do
      @sentinel_ports.all? { |p| sentinel(p).call("SENTINEL", "get-master-addr-by-name", MASTER).last.to_i != old }
    end
    wait_until(30, "the new master to accept writes") do
      current_master.redis.call("SET", "killer-test:failover-probe", "1") == "OK"
    rescue StandardError
      false
    end
    old
  end

  def sentinel(port = @sentinel_ports.first)
    SpecRedis.new(url: "redis://127.0.0.1:#{port}", timeout: 1, password: @sentinel_password)
  end

  private

  def start_sentinel(port)
    conf = File.join(@dir, "sentinel-#{port}.conf")
    lines = ["port #{port}", "bind 127.0.0.1", "dir #{@dir}",
             "sentinel monitor #{MASTER} 127.0.0.1 #{@master.port} 2",
             "sentinel down-after-milliseconds #{MASTER} 1000",
             "sentinel failover-timeout #{MASTER} 5000",
             "sentinel parallel-syncs #{MASTER} 1"]
    lines << "sentinel auth-pass #{MASTER} #{@password}" if @password
    lines += ["requirepass #{@sentinel_password}", "sentinel sentinel-pass #{@sentinel_password}"] if @sentinel_password
    File.write(conf, lines.join("\n") + "\n")
    Process.spawn("redis-server", conf, "--sentinel", out: File::NULL, err: File::NULL)
  end

  def healthy?
    @sentinel_ports.all? do |p|
      s = sentinel(p)
      info = fields(s.call("SENTINEL", "MASTER", MASTER))
      info["num-slaves"].to_i >= 1 && info["num-other-sentinels"].to_i >= 2
    ensure
      s&.close
    end
  rescue StandardError
    false
  end

  def replica_ready?
    replicas = sentinel.call("SENTINEL", "REPLICAS", MASTER).map { |r| fields(r) }
    replicas.any? { |r| !r["flags"].include?("down") && r["master-link-status"] == "ok" }
  rescue StandardError
    false
  end

  # A RESP2 flat list or a RESP3 map (redis-client speaks RESP3), as a Hash.
  def fields(reply) = reply.is_a?(Hash) ? reply : reply.each_slice(2).to_h

  def kill(pid)
    Process.kill("KILL", pid)
    Process.wait(pid)
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  end

  def wait_until(seconds, what)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
    until yield
      raise "timed out after #{seconds}s waiting for #{what}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.05
    end
  end
end
