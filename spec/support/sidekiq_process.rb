# frozen_string_literal: true

require "json"
require "tmpdir"

# A real `sidekiq` process running spec/support/app.rb, started by a test,
# stopped by pid (TERM, then KILL after a bound).
class SidekiqProcess
  APP = File.expand_path("app.rb", __dir__)
  # The checkout's lib, and what a stack of bin/matrix puts before the
  # system's gems (the sidekiq8 leg's source trees): every Ruby the specs
  # start sees the same Sidekiq as the specs.
  LIB = [File.expand_path("../../lib", __dir__), ENV.fetch("KILLER_STACK_RUBYLIB", nil)].compact.join(":")

  attr_reader :pid, :log_path

  # `redis:` is how the spec reaches Sidekiq's Redis when it is not
  # `redis_url` (TLS, a socket, sentinels: SpecRedis options).
  # `cgroup:` a cgroup v1/v2 directory the process starts in.
  def initialize(redis_url:, concurrency: 5, timeout: 8, env: {}, app: APP, queues: %w[default], redis: nil,
                 cgroup: nil)
    @cgroup = cgroup
    @app = app
    @queues = queues
    @redis_url = redis_url
    @redis_options = redis || { url: redis_url }
    @concurrency = concurrency
    @timeout = timeout
    @env = env
    @log_path = File.join(Dir.mktmpdir("killer-sidekiq"), "sidekiq.log")
  end

  def start
    env = { "REDIS_URL" => @redis_url, "RUBYLIB" => LIB, "KILLER_TEST_POLL" => "0.2" }.merge(@env)
    # In a cgroup: the shell moves itself in, then becomes sidekiq (same pid).
    enter = @cgroup ? ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', @cgroup, "sidekiq"] : ["sidekiq"]
    @pid = Process.spawn(env, *enter, "-r", @app, "-c", @concurrency.to_s, "-t", @timeout.to_s,
                         *@queues.flat_map { |q| ["-q", q] }, out: @log_path, err: %i[child out])
    wait_until(20, "sidekiq #{@pid} to heartbeat") { identity }
    self
  end

  # The process's identity in Sidekiq's process set, once it heartbeats.
  def identity
    redis = SpecRedis.new(**@redis_options)
    redis.smembers("processes").find { |id| redis.hget(id, "info")&.then { |i| JSON.parse(i)["pid"] == @pid } }
  ensure
    redis&.close
  end

  def alive?
    Process.kill(0, @pid)
    Process.waitpid(@pid, Process::WNOHANG).nil?
  rescue Errno::ESRCH, Errno::ECHILD
    false
  end

  # TERM, wait up to `within`, then KILL. Returns seconds to exit.
  def stop(within: @timeout + 5)
    return 0 unless @pid

    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    Process.kill("TERM", @pid)
    unless wait_exit(within)
      Process.kill("KILL", @pid)
      wait_exit(5)
    end
    Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0
  rescue Errno::ESRCH, Errno::ECHILD
    0
  ensure
    @pid = nil
  end

  def log = File.read(@log_path)

  # Waits for the process to exit on its own; its Process::Status, or nil.
  def wait_exit_status(within)
    deadline = Time.now + within
    while Time.now < deadline
      _, status = Process.waitpid2(@pid, Process::WNOHANG)
      return status.tap { @pid = nil } if status

      sleep 0.05
    end
    nil
  end

  private

  def wait_exit(within)
    deadline = Time.now + within
    while Time.now < deadline
      return true if Process.waitpid(@pid, Process::WNOHANG)

      sleep 0.05
    end
    false
  rescue Errno::ECHILD
    true
  end

  def wait_until(seconds, what)
    deadline = Time.now + seconds
    until (v = yield)
      raise "sidekiq #{@pid} exited while waiting for #{what}; log:\n#{log}" unless alive?
      raise "timed out waiting for #{what}; log:\n#{log}" if Time.now > deadline

      sleep 0.05
    end
    v
  end
end
