# frozen_string_literal: true

require_relative "../support/app"

# Whatever is wrong with Killer's Redis, Sidekiq boots and runs jobs; Killer
# says once what to check, retries, and works as soon as Redis answers. No
# message, log line, CLI output or page shows a password.
RSpec.describe "Killer when its Redis is wrong, refuses it, or is not there" do
  def quick_job_runs(sidekiq)
    jid = QuickJob.perform_async
    wait_for(15, "a job to run") { redis.lrange("test:events", 0, -1).include?("finished:#{jid}") }
    expect(sidekiq.alive?).to be(true)
  end

  it "boots Sidekiq without Killer's Redis, logs one error, and cancels once Redis is there" do
    port = FreePort.pick
    sidekiq = sidekiq_on({ url: TestRedis.url }, spec_redis: { url: TestRedis.url },
                         killer_redis: { url: "redis://127.0.0.1:#{port}/0" })
    quick_job_runs(sidekiq)
    jid = SleepyJob.perform_async(60)
    wait_started(redis, jid)
    sleep 1 # the watcher retries meanwhile; one line says so
    expect(sidekiq.log.scan("event=redis.down").size).to eq(1)
    expect(log_lines(sidekiq.log, %r{killer: cannot reach Redis \(redis://127.0.0.1:#{port}/0: Connection refused.*check that Redis runs},
                     level: "ERROR")).not_to be_empty

    server = RedisServer.new(port).start
    Killer.configure { |c| c.redis_url = server.url }
    expect(Killer.cancel(jid, wait: 15)).to eq(:cancelled)
    expect(sidekiq.log).to include("Redis reachable again")
  ensure
    sidekiq&.stop
    server&.stop
  end

  it "boots Sidekiq when Killer is told to speak TLS to a plain Redis, and says to check TLS" do
    url = TestRedis.url.sub("redis://", "rediss://")
    sidekiq = sidekiq_on({ url: TestRedis.url }, spec_redis: { url: TestRedis.url }, killer_redis: { url: url })
    quick_job_runs(sidekiq)
    wait_for(10, "Killer's error") { sidekiq.log.include?("event=redis.down") }
    expect(sidekiq.log).to match(/cannot reach Redis \(#{Regexp.escape(url)}: .*\); check TLS/)
  ensure
    sidekiq&.stop
  end

  it "boots Sidekiq when Killer's Redis host does not resolve, logs one error saying so; killer exits 1" do
    url = "redis://killer-redis.invalid:6379/0"
    sidekiq = sidekiq_on({ url: TestRedis.url }, spec_redis: { url: TestRedis.url }, killer_redis: { url: url })
    quick_job_runs(sidekiq)
    wait_for(30, "Killer's error") { sidekiq.log.include?("event=redis.down") }
    expect(log_lines(sidekiq.log, /killer: cannot reach Redis \(#{Regexp.escape(url)}: .*check the host name/,
                     level: "ERROR").size).to eq(1)
    out, err, code = killer_cli("cancel", "some-jid", env: { "REDIS_URL" => url })
    expect([out, code]).to eq(["", 1])
    expect(err).to include("killer-redis.invalid", "check the host name")
    # And the wrong TLS: a rediss:// URL to a plain port.
    out, err, code = killer_cli("cancel", "some-jid", env: { "REDIS_URL" => TestRedis.url.sub("redis://", "rediss://") })
    expect([out, code, err]).to match(["", 1, /check TLS/])
  ensure
    sidekiq&.stop
  end

  it "warns when Redis may evict Killer's records (maxmemory-policy), and says nothing otherwise" do
    server = RedisServer.new(args: ["--maxmemory-policy", "allkeys-lru"]).start
    log = capture_log
    Killer.configure { |c| c.redis_url = server.url }
    Killer.start
    wait_for(10, "the warning") { log.string.include?("event=redis.eviction") }
    expect(log.string).to match(/maxmemory-policy is allkeys-lru.*Set maxmemory-policy noeviction/)

    Killer.reset!
    log = capture_log
    Killer.start # the suite's Redis: noeviction, Redis's default
    wait_for(10, "the watcher's start line, written after the check") { log.string.include?("watching for cancels") }
    expect(log.string).not_to include("event=redis.eviction")
  ensure
    server&.stop
  end

  context "with passwords" do
    before(:all) do
      @password = "pw-#{SecureRandom.hex(6)}"
      @wrong = "wrong-#{SecureRandom.hex(6)}"
      @server = RedisServer.new(password: @password).start
      @url = "redis://:#{@password}@127.0.0.1:#{@server.port}/0"
    end

    after(:all) { @server&.stop }

    it "boots Sidekiq when Redis refuses Killer's password, and says to check the password" do
      wrong = "redis://:#{@wrong}@127.0.0.1:#{@server.port}/0"
      sidekiq = sidekiq_on({ url: TestRedis.url }, spec_redis: { url: TestRedis.url }, killer_redis: { url: wrong })
      quick_job_runs(sidekiq)
      wait_for(10, "Killer's error") { sidekiq.log.include?("event=redis.down") }
      expect(sidekiq.log).to match(/cannot reach Redis \(redis:\/\/:REDACTED@.*check the username and password/)
      expect(sidekiq.log).not_to include(@wrong)
    ensure
      sidekiq&.stop
    end

    it "shows no password in any error, log line, CLI output or Web page it provokes" do
      seen = []
      log = capture_log
      shown = ->(e) { seen << e.message << e.inspect << e.full_message }
      wrong = "redis://alice:#{@wrong}@127.0.0.1:#{@server.port}/0"
      [
        { url: wrong },                                          # refused by Redis
        { url: wrong.sub("redis://", "rediss://") },             # TLS to a plain port
        { url: "redis://:#{@wrong}@127.0.0.1:#{FreePort.pick}/0" }, # nothing listening
        { url: "redis://mymaster", password: @wrong, sentinels: [{ host: "127.0.0.1", port: FreePort.pick }],
          sentinel_password: @password }
      ].each do |options|
        Killer.reset!
        Killer.configuration.logger = Logger.new(log)
        Killer.configure do |c|
          c.redis = options
          c.network_timeout = 0.5
        end
        seen << Killer.configuration.redis.inspect << Killer.configuration.redis_url
        expect { Killer.cancel("x") }.to raise_error(Killer::ConnectionError) { |e| shown.(e) }
      end
      [{ url: "http://u:#{@wrong}@h" }, { url: "redis://:#{@wrong}@h:99999/0" }, { url: wrong, hots: 1 }].each do |options|
        expect { Killer.configure { |c| c.redis = options } }.to raise_error(ArgumentError) { |e| shown.(e) }
      end
      expect { Killer.configure { |c| c.redis_url = "nope://:#{@wrong}@h" } }.to raise_error(ArgumentError) { |e| shown.(e) }

      [["--redis-url", wrong, "status", "abc"], ["--redis-url", "http://:#{@wrong}@h", "status", "abc"],
       ["--redis-url", @url, "cancel", "cli-audited"]].each do |args|
        out, err, code = killer_cli(*args)
        seen << out << err
        expect(code).to eq(args.include?(@url) ? 0 : 1), err
      end
      _, err, = killer_cli("status", "abc", env: { "REDIS_URL" => wrong })
      seen << err

      sidekiq = sidekiq_on({ url: TestRedis.url }, spec_redis: { url: TestRedis.url }, killer_redis: { url: wrong })
      wait_for(10, "Killer's error") { sidekiq.log.include?("event=redis.down") }
      seen << sidekiq.log
      web = WebServer.new(redis_url: TestRedis.url, env: { "KILLER_REDIS_URL" => wrong }).start
      seen << Net::HTTP.get_response(URI("#{web.url}/killer")).body << web.log
      seen << log.string

      expect(seen.join("\n")).to include("REDACTED")
      [@password, @wrong].each { |secret| expect(seen.join("\n")).not_to include(secret) }
    ensure
      sidekiq&.stop
      web&.stop
    end
  end

  context "with an ACL user" do
    before(:all) do
      @server = RedisServer.new.start
      admin = @server.redis
      # No channel at all (Redis 7's default for a new user): no PUBLISH, no SUBSCRIBE.
      admin.call("ACL", "SETUSER", "nopubsub", "on", ">nopubsub-pw", "resetchannels", "~*", "+@all")
      # The rules the README gives for a user of Killer's own.
      admin.call("ACL", "SETUSER", "killer", "on", ">killer-pw", "resetchannels", "~killer:*", "%R~*",
                 "&killer:*", "+@read", "+@write", "+@scripting", "+@pubsub", "+@transaction", "+@connection", "+time")
    end

    after(:all) { @server&.stop }

    def url(user) = "redis://#{user}:#{user}-pw@127.0.0.1:#{@server.port}/0"

    it "without pub/sub: records and applies a cancel by the poll, without raising, warning once" do
      options = { url: url("nopubsub") }
      sidekiq = sidekiq_on(options, spec_redis: options)
      jid = push_to(options, SleepyJob, 60)
      wait_started(SpecRedis.new(**options), jid)
      log = capture_log
      Killer.configure { |c| c.redis = options }
      expect(Killer.cancel(jid)).to be(true)
      expect(Killer.cancel("another")).to be(true)
      expect(log.string.scan("event=cancel.publish_refused").size).to eq(1)
      expect(log.string).to match(/Redis refused to PUBLISH.*NoPerm.*ACL rule &killer:\*/i)
      wait_for(10, "the poll to apply it") { Killer.status(jid) == :cancelled }
      expect(sidekiq.log).to match(/refused SUBSCRIBE to killer:v1:cancel.*ACL rule &killer:\*/)
    ensure
      sidekiq&.stop
    end

    it "with the README's rules for Killer's own user: cancels at pub/sub speed, leases and reports" do
      sidekiq = sidekiq_on({ url: @server.url }, spec_redis: { url: @server.url },
                           killer_redis: { url: url("killer") }, env: { "KILLER_TEST_POLL" => "30" })
      jid = push_to({ url: @server.url }, SleepyJob, 60)
      wait_started(@server.redis, jid)
      Killer.configure { |c| c.redis = { url: url("killer") } }
      # poll_interval is 30 s in that process: only the PUBLISH can stop it this fast.
      expect(Killer.cancel(jid, wait: 5)).to eq(:cancelled), sidekiq.log
      expect(Killer.exclusive("acl-lease", ttl: 1) { :held }).to eq(:held)
      wait_for(5, "the process report") { @server.redis.call("KEYS", "killer:v1:process:*").any? }
      expect(sidekiq.log).not_to match(/NOPERM|refused/)
    ensure
      sidekiq&.stop
    end
  end
end
