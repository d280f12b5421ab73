# frozen_string_literal: true

RSpec.describe Killer::Configuration do
  subject(:config) { described_class.new }

  it "has documented defaults" do
    expect(config.key_prefix).to eq("killer:")
    expect(config.poll_interval).to eq(1.0)
    expect(config.cancel_ttl).to eq(86_400.0)
    expect(config.grace).to eq(5.0)
    expect(config.network_timeout).to eq(3.0)
    expect(config.logger).to be(Sidekiq.logger)
    expect(config.hard_timeout).to eq(60.0)
    expect(config.default_timeout).to be_nil
    expect(config.on_timeout).to eq(:retry)
    expect(config.exit_with_parent).to be(false)
    expect(config.report_interval).to eq(5.0)
  end

  it "uses the Redis set here, then Sidekiq's own, then REDIS_URL, and never shows its password" do
    port = TestRedis.server.port
    with_sidekiq_redis(url: "redis://:s3cret@127.0.0.1:#{port}/3") do
      ENV["REDIS_URL"] = "redis://cache.invalid:6379/0"
      expect(config.redis.to_s).to eq("redis://:REDACTED@127.0.0.1:#{port}/3")
      expect(config.redis.password).to eq("s3cret")
      expect(config.redis_url).not_to include("s3cret")
      config.redis_url = "redis://example.invalid:1/2"
      expect(config.redis_url).to eq("redis://example.invalid:1/2")
    end
  end

  it "falls back to REDIS_URL, then localhost, where Sidekiq's Redis cannot be read" do
    expect(Killer::RedisOptions.from_env("REDIS_URL" => "redis://10.1.2.3:6390/5").to_s).to eq("redis://10.1.2.3:6390/5")
    expect(Killer::RedisOptions.from_env("REDIS_URL" => "").to_s).to eq("redis://localhost:6379/0")
    expect(Killer::RedisOptions.from_env({}).to_s).to eq("redis://localhost:6379/0")
  end

  {
    redis_url: ["http://x", "", nil, 42],
    key_prefix: ["", "a b", "x" * 201, :sym],
    poll_interval: [0, -1, 0.001, "1", Float::NAN, Float::INFINITY, 3601],
    cancel_ttl: [0, 0.5, "60", nil],
    grace: [0, -5, "5"],
    network_timeout: [0, 601, nil],
    hard_timeout: [0, -1, "60"],
    default_timeout: [0, -1, "300", 604_801],
    on_timeout: [:kill, nil, 1],
    exit_with_parent: [nil, "true", 1],
    report_interval: [0, 0.05, 3601, "5", nil]
  }.each do |option, bad_values|
    bad_values.each do |bad|
      it "refuses #{option} = #{bad.inspect} with an ArgumentError naming it" do
        expect { config.public_send("#{option}=", bad) }
          .to raise_error(ArgumentError, /#{option}.*#{Regexp.escape(bad.inspect)}/)
      end
    end
  end

  it "accepts Integers and Floats for durations" do
    config.poll_interval = 2
    config.grace = 0.5
    expect([config.poll_interval, config.grace]).to eq([2.0, 0.5])
  end

  it "is what Killer.configure yields" do
    returned = Killer.configure { |c| c.key_prefix = "app1:" }
    expect(returned).to be(Killer.configuration)
    expect(Killer.configuration.key_prefix).to eq("app1:")
  end
end

RSpec.describe "bad input to the public API" do
  def commands = TestRedis.redis.info("stats")["total_commands_processed"].to_i

  [nil, "", 42, :jid, ["a"], "x" * 1025, "\xFF\xFE".dup.force_encoding("UTF-8")].each do |bad|
    it "Killer.cancel(#{bad.inspect[0, 40]}) raises ArgumentError naming the value and writes nothing" do
      before = commands
      expect { Killer.cancel(bad) }.to raise_error(ArgumentError) { |e|
        expect(e.message).to include(bad.is_a?(String) && bad.size > 100 ? "1025 bytes" : bad.inspect[0, 20])
      }
      expect(commands).to eq(before + 1) # only our own INFO
      expect(killer_keys).to eq(0)
    end
  end

  [-1, "5", Float::NAN].each do |bad|
    it "Killer.cancel(jid, wait: #{bad.inspect}) raises ArgumentError and writes nothing" do
      expect { Killer.cancel("abc", wait: bad) }.to raise_error(ArgumentError, /wait.*#{Regexp.escape(bad.inspect)}/)
      expect(killer_keys).to eq(0)
    end
  end

  it "Killer.status refuses the same values" do
    expect { Killer.status(nil) }.to raise_error(ArgumentError, /nil/)
  end

  it "Killer::Cancelled is not a StandardError, so `rescue => e` cannot swallow it" do
    expect(Killer::Cancelled.ancestors).not_to include(StandardError)
    expect(Killer::ConnectionError.ancestors).to include(Killer::Error, StandardError)
  end

  it "a Redis that cannot be reached is a Killer::ConnectionError saying what to check" do
    Killer.configure do |c|
      c.redis_url = "redis://127.0.0.1:#{FreePort.pick}/0"
      c.network_timeout = 0.2
    end
    expect { Killer.cancel("abc") }.to raise_error(Killer::ConnectionError, /Connection refused.*check that Redis runs/)
  end
end
