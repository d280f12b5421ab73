# frozen_string_literal: true

require "json"
require "open3"

# For the stories told against the Redis deployments Sidekiq shops run:
# a `sidekiq` configured the way an initializer would do it, the CLI as a
# user runs it, and the Redis the jobs report to.
module DeploymentHelpers
  # A real `sidekiq` whose Redis is `sidekiq_redis` (config.redis = ...),
  # with REDIS_URL naming `cache` (another Redis, as in apps whose REDIS_URL
  # is their cache). `killer_redis` configures Killer's own Redis.
  def sidekiq_on(sidekiq_redis, spec_redis:, cache: TestRedis, killer_redis: nil, env: {})
    env = env.merge("KILLER_TEST_SIDEKIQ_REDIS" => JSON.generate(sidekiq_redis))
    env["KILLER_TEST_KILLER_REDIS"] = JSON.generate(killer_redis) if killer_redis
    SidekiqProcess.new(redis_url: cache.url, env: env, redis: spec_redis, concurrency: 3).start
  end

  # A job pushed through Sidekiq's own client to the Redis of `options`.
  def push_to(options, klass, *args)
    with_sidekiq_redis(options) { klass.perform_async(*args) }
  end

  def wait_started(spec_redis, jid)
    wait_for(15, "#{jid} to start") { spec_redis.lrange("test:events", 0, -1).include?("started:#{jid}") }
  end

  def events_in(spec_redis) = spec_redis.lrange("test:events", 0, -1)

  # The installed `killer` command of this checkout; [stdout, stderr, status].
  def killer_cli(*args, env: {})
    exe = File.expand_path("../../exe/killer", __dir__)
    out, err, status = Open3.capture3({ "RUBYLIB" => SidekiqProcess::LIB }.merge(env), "ruby", exe, *args)
    [out, err, status.exitstatus]
  end
end

RSpec.configure { |c| c.include DeploymentHelpers }
