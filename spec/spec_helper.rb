# frozen_string_literal: true

$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
require "killer"
require "sidekiq/api"
# Sidekiq 7+ logs each Redis pool it creates at info; the specs' output is
# RSpec's.
Sidekiq.logger.level = Logger::WARN
# Sidekiq 6.4.1 calls redis-rb 4.8 APIs that warn on every push.
Redis.silence_deprecations = true if defined?(Redis) && Redis.respond_to?(:silence_deprecations=)
require "logger"
require "stringio"
require "securerandom"
require "fileutils"
require "set"
Dir[File.join(__dir__, "support", "*.rb")].sort.each { |f| require f unless f.end_with?("app.rb") }

RSpec.configure do |config|
  config.disable_monkey_patching!
  config.order = :defined
  config.include SpecHelpers

  # spec/unit needs no Redis and runs without one: a unit spec that
  # reached for Redis would find nothing at REDIS_URL. spec/integration
  # talks to real Redis (in_process/: from this process; the rest: real
  # `sidekiq` processes too).
  config.define_derived_metadata(file_path: %r{/spec/unit/}) { |meta| meta[:unit] = true }
  needs_redis = -> { RSpec.world.example_groups.any? { |g| !g.metadata[:unit] } }

  # One throwaway redis-server for the whole run, killed by pid at the end.
  config.before(:suite) do
    if needs_redis.()
      TestRedis.start
      ENV["REDIS_URL"] = TestRedis.url
    else
      ENV["REDIS_URL"] = "redis://127.0.0.1:#{FreePort.pick}/0" # nothing there
    end
  end
  config.after(:suite) { TestRedis.stop }
  spec_log = Logger.new(File.expand_path("../tmp/spec.log", __dir__).tap { |f| FileUtils.mkdir_p(File.dirname(f)) })
  # A group tagged `keep_redis: true` tells one story across its examples
  # and flushes Redis itself, once.
  config.before do |example|
    spec_log.info("--- #{example.full_description}")
    Killer.configuration.logger = spec_log
    next if example.metadata[:unit]

    TestRedis.flush unless example.metadata[:keep_redis]
    ENV["REDIS_URL"] = TestRedis.url
  end
  config.after { Killer.reset! }

  # GC_COMPACT=1 compacts the heap before every example and on every major
  # GC during it: a native object that kept a moved Ruby object would break.
  if ENV["GC_COMPACT"] == "1" && GC.respond_to?(:auto_compact=)
    config.around do |example|
      GC.auto_compact = true
      GC.compact
      example.run
    ensure
      GC.auto_compact = false
    end
  end

  # GC_STRESS=1 runs every example under GC.stress, to shake out native
  # objects freed while Rust or another thread still uses them.
  if ENV["GC_STRESS"] == "1"
    config.around do |example|
      GC.stress = true
      example.run
    ensure
      GC.stress = false
    end
  end
end
