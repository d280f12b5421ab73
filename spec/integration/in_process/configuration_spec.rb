# frozen_string_literal: true

RSpec.describe "Killer's Redis, from this process's configuration" do
  subject(:config) { Killer::Configuration.new }

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
