# frozen_string_literal: true

require_relative "../support/app"

# Killer on the Redis that Sidekiq shops run: TLS (a private CA with client
# certificates; Heroku's verify_mode none), unix sockets, Sentinel with a
# failover. Each story configures Sidekiq as an initializer would, points
# REDIS_URL at another Redis (an app's cache), and cancels running jobs
# from a console and from the `killer` command.
RSpec.describe "Killer on the Redis deployments Sidekiq runs on" do
  context "with TLS and a private CA that also checks client certificates" do
    before(:all) do
      @ca = TestCA.new
      @server = RedisServer.new(tls: @ca, client_certs: true).start
      cert, key = @ca.client
      # JSON for the app's initializer: paths it turns into OpenSSL objects.
      @options = { url: @server.url, ssl_params: { ca_file: @ca.ca_file, cert: cert, key: key } }
      @spec_redis = @server.redis
      @sidekiq = sidekiq_on(@options, spec_redis: @server.client_options)
    end

    after(:all) do
      @sidekiq&.stop
      @server&.stop
      @ca&.remove
    end

    it "reads Sidekiq's rediss:// and ssl_params, not REDIS_URL, and cancels from a console" do
      expect(@sidekiq.log).to include("using Redis at #{@server.url}")
      jid = push_to(@server.client_options, SleepyJob, 60)
      wait_started(@spec_redis, jid)
      Killer.configure { |c| c.redis = @server.client_options }
      expect(Killer.cancel(jid, wait: 5)).to eq(:cancelled)
      wait_for(5, "the job's ensure") { @spec_redis.hexists("test:stopped_at", jid) }
      expect(events_in(@spec_redis)).not_to include("finished:#{jid}")
      expect(TestRedis.redis.call("KEYS", "killer:*")).to be_empty # nothing went to the cache
    end

    it "cancels from the `killer` command given the same settings with -r" do
      jid = push_to(@server.client_options, SleepyJob, 60)
      wait_started(@spec_redis, jid)
      config = File.join(@ca.dir, "killer_redis.rb")
      cert, key = @ca.client
      File.write(config, <<~RUBY)
        Killer.configure do |c|
          c.redis = { url: #{@server.url.inspect}, ssl_params: { ca_file: #{@ca.ca_file.inspect},
                      cert: OpenSSL::X509::Certificate.new(File.read(#{cert.inspect})),
                      key: OpenSSL::PKey.read(File.read(#{key.inspect})) } }
        end
      RUBY
      out, err, code = killer_cli("-r", config, "cancel", jid, "--wait", "5")
      expect([out.strip, code]).to eq(["cancelled", 0]), err
    end

    it "says what to check when the CA is wrong, and Sidekiq keeps running jobs" do
      other = TestCA.new
      cert, key = @ca.client
      wrong = { url: @server.url, ssl_params: { ca_file: other.ca_file, cert: cert, key: key } }
      sidekiq = sidekiq_on(@options, spec_redis: @server.client_options, killer_redis: wrong)
      jid = push_to(@server.client_options, QuickJob)
      wait_for(10, "the job to run") { events_in(@spec_redis).include?("finished:#{jid}") }
      wait_for(10, "Killer's error") { sidekiq.log.include?("event=redis.down") }
      expect(sidekiq.log).to match(/ERROR.*cannot reach Redis \(#{Regexp.escape(@server.url)}: invalid peer certificate: \w+\); check TLS/)

      Killer.configure { |c| c.redis = { url: @server.url, ssl_params: { ca_file: other.ca_file } } }
      expect { Killer.cancel("abc") }.to raise_error(Killer::ConnectionError, /invalid peer certificate.*check TLS.*ca_file/)
    ensure
      sidekiq&.stop
      other&.remove
    end

    it "trusts a CA directory (ca_path) and refuses a missing client certificate" do
      dir = Dir.mktmpdir("killer-ca-path")
      FileUtils.cp(@ca.ca_file, File.join(dir, "our-ca.pem"))
      cert, key = @ca.client
      Killer.configure do |c|
        c.redis = { url: @server.url, ssl_params: { ca_path: dir, cert: OpenSSL::X509::Certificate.new(File.read(cert)),
                                                    key: OpenSSL::PKey.read(File.read(key)) } }
      end
      expect(Killer.cancel("by-ca-path")).to be(true)
      Killer.reset!
      Killer.configure { |c| c.redis = { url: @server.url, ssl_params: { ca_path: dir } } }
      expect { Killer.cancel("no-client-cert") }.to raise_error(Killer::ConnectionError, /CertificateRequired|certificate/)
    end
  end

  context "with TLS that is not verified (verify_mode none, as Heroku documents) and a password" do
    before(:all) do
      @ca = TestCA.new
      @password = "tls-pw-#{SecureRandom.hex(4)}"
      @server = RedisServer.new(tls: @ca, password: @password).start
      @options = { url: @server.url.sub("rediss://", "rediss://:#{@password}@"), ssl_params: { verify_mode: "VERIFY_NONE" } }
      @sidekiq = sidekiq_on(@options, spec_redis: @server.client_options)
    end

    after(:all) do
      @sidekiq&.stop
      @server&.stop
      @ca&.remove
    end

    it "cancels a running job, and shows the password nowhere" do
      jid = push_to(@server.client_options, SleepyJob, 60)
      wait_started(@server.redis, jid)
      Killer.configure { |c| c.redis = { url: @options[:url], ssl_params: { verify_mode: OpenSSL::SSL::VERIFY_NONE } } }
      expect(Killer.cancel(jid, wait: 5)).to eq(:cancelled)
      # The command line, configured by -r as Heroku's docs configure Sidekiq.
      other = push_to(@server.client_options, SleepyJob, 60)
      wait_started(@server.redis, other)
      out, err, code = Dir.mktmpdir do |dir|
        File.write(config = File.join(dir, "redis.rb"), <<~RUBY)
          require "openssl"
          Killer.configure { |c| c.redis = { url: #{@options[:url].inspect}, ssl_params: { verify_mode: OpenSSL::SSL::VERIFY_NONE } } }
        RUBY
        killer_cli("-r", config, "cancel", other, "--wait", "5")
      end
      expect([out, code]).to eq(["cancelled\n", 0]), err
      expect(err).not_to include(@password)
      expect(@sidekiq.log).to include("using Redis at rediss://:REDACTED@127.0.0.1:#{@server.port}/0")
      expect(@sidekiq.log).not_to include(@password)
      expect(Killer.configuration.redis.inspect).not_to include(@password)
    end
  end

  [nil, "sock-pw-#{SecureRandom.hex(4)}"].each do |password|
    context "on a unix socket #{password ? "with" : "without"} a password" do
      before(:all) do
        @server = RedisServer.new(unixsocket: true, password: password).start
        @options = { path: @server.path }
        @options[:password] = password if password
        @sidekiq = sidekiq_on(@options, spec_redis: @server.client_options)
      end

      after(:all) do
        @sidekiq&.stop
        @server&.stop
      end

      it "cancels a running job end to end" do
        jid = push_to(@server.client_options, SleepyJob, 60)
        wait_started(@server.redis, jid)
        Killer.configure { |c| c.redis = @options }
        expect(Killer.cancel(jid, wait: 5)).to eq(:cancelled)
        expect(@sidekiq.log).to include("using Redis at unix://#{@server.path}?db=0")
        expect(@sidekiq.log).not_to include(password) if password
        expect(events_in(@server.redis)).not_to include("finished:#{jid}")
      end
    end
  end

  context "behind Sentinel, through a failover and the old master's death" do
    before(:all) do
      @cluster = SentinelCluster.new(password: "master-pw-#{SecureRandom.hex(4)}",
                                     sentinel_password: "sentinel-pw-#{SecureRandom.hex(4)}").start
      @options = @cluster.sidekiq_options
      @sidekiq = sidekiq_on(@options, spec_redis: @options)
    end

    after(:all) do
      @sidekiq&.stop
      @cluster&.stop
    end

    def spec_redis = SpecRedis.new(**@options)

    def run_and_cancel(console)
      jid = push_to(@options, SleepyJob, 60)
      wait_started(spec_redis, jid)
      expect(console.call(jid)).to eq(:cancelled)
      jid
    end

    it "cancels before and after the failover from one console, and after the old master dies" do
      Killer.configure { |c| c.redis = @options }
      console = ->(jid) { Killer.cancel(jid, wait: 10) } # opened before the failover, kept through it
      first = run_and_cancel(console)

      # A lease taken before the failover is renewed on the new master, not lost.
      old = second = nil
      held = Killer.exclusive("across-failover", ttl: 6) do
        old = @cluster.failover!
        expect(@cluster.master_port).not_to eq(old)
        second = run_and_cancel(console)
        wait_for(10, "a renewal on the new master") { spec_redis.call("PTTL", "killer:v1:lease:across-failover") > 5000 }
        :held_throughout
      end
      expect(held).to eq(:held_throughout)
      # Each Sidekiq process heard the sentinels announce it.
      wait_for(10, "the +switch-master line") { @sidekiq.log.include?("sentinels moved master mymaster") }

      [@cluster.master, @cluster.replica].find { |s| s.port == old }.stop
      third = run_and_cancel(console)

      statuses = [first, second, third].map { |jid| Killer.status(jid) }
      expect(statuses).to eq(%i[cancelled cancelled cancelled])
      expect(@sidekiq.log).not_to match(/(WARN|ERROR).*killer:.*READONLY/)
      expect(@sidekiq.log).not_to include(@options[:password])
      stats = with_sidekiq_redis(@options) { sidekiq_stats }
      expect(stats).to include(failed: 0)
    end
  end
end
