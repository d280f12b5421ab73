# frozen_string_literal: true

require "net/http"
require "tmpdir"

# Sidekiq::Web with the Killer tab (spec/support/web/config.ru) under
# WEBrick on a free port, started by a test, stopped by pid.
class WebServer
  CONFIG = File.expand_path("web/config.ru", __dir__)
  LIB = SidekiqProcess::LIB

  attr_reader :port

  def initialize(redis_url:, env: {})
    @redis_url = redis_url
    @env = env
    @port = FreePort.pick
    @log_path = File.join(Dir.mktmpdir("killer-web"), "web.log")
  end

  def url = "http://127.0.0.1:#{port}"

  def start
    env = { "REDIS_URL" => @redis_url, "RUBYLIB" => LIB, "RACK_ENV" => "production" }.merge(@env)
    @pid = Process.spawn(env, "rackup", "-s", "webrick", "-o", "127.0.0.1", "-p", port.to_s, CONFIG,
                         out: @log_path, err: %i[child out])
    deadline = Time.now + 20
    until up?
      raise "the web server did not start; log:\n#{log}" if Time.now > deadline || !alive?

      sleep 0.1
    end
    self
  end

  def log = File.read(@log_path)

  def stop
    return unless @pid

    Process.kill("TERM", @pid)
    deadline = Time.now + 5
    exited = nil
    until (exited = Process.waitpid(@pid, Process::WNOHANG)) || Time.now > deadline
      sleep 0.05
    end
    unless exited
      Process.kill("KILL", @pid)
      Process.waitpid(@pid)
    end
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  ensure
    @pid = nil
  end

  private

  def alive?
    Process.waitpid(@pid, Process::WNOHANG).nil?
  rescue Errno::ECHILD
    false
  end

  def up?
    Net::HTTP.get_response(URI("#{url}/killer")).is_a?(Net::HTTPSuccess)
  rescue SystemCallError, IOError
    false
  end
end
