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
    expect(config.express).to be(true)
    expect(config.report_interval).to eq(5.0)
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
    express: [nil, "false", 0],
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
