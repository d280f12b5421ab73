# frozen_string_literal: true

require "openssl"

RSpec.describe Killer::RedisOptions do
  def native(**hash) = described_class.new(hash).to_native

  it "reads redis://, rediss:// and unix:// URLs, explicit keys winning over the URL's" do
    expect(native(url: "redis://alice:s%40cret@10.0.0.5:6380/4"))
      .to include(host: "10.0.0.5", port: 6380, db: 4, username: "alice", password: "s@cret", ssl: false)
    expect(native(url: "rediss://cache.example.com", db: 2)).to include(host: "cache.example.com", port: 6379, db: 2, ssl: true)
    expect(native(url: "unix:///run/redis.sock?db=3")).to include(path: "/run/redis.sock", db: 3)
    expect(native(path: "/run/redis.sock", password: "pw")).to include(path: "/run/redis.sock", password: "pw")
    expect(native(url: "redis://:pw@h/0", password: "other")[:password]).to eq("other")
  end

  it "takes ssl_params as Sidekiq does: CA file or directory, OpenSSL client certificate, verify_mode" do
    key = OpenSSL::PKey::RSA.new(2048)
    cert = OpenSSL::X509::Certificate.new.tap do |c|
      c.version = 2
      c.serial = 1
      c.subject = c.issuer = OpenSSL::X509::Name.parse("/CN=client")
      c.public_key = key.public_key
      c.not_before = Time.now
      c.not_after = Time.now + 60
      c.sign(key, OpenSSL::Digest.new("SHA256"))
    end
    Dir.mktmpdir do |dir|
      ca = File.join(dir, "ca.pem").tap { |f| File.write(f, cert.to_pem) }
      n = native(url: "rediss://h", ssl_params: { ca_file: ca, ca_path: dir, cert: cert, key: key,
                                                  verify_mode: OpenSSL::SSL::VERIFY_PEER })
      expect(n).to include(ca_file: ca, ca_path: dir, cert: cert.to_pem, key: key.to_pem, verify: true)
    end
    expect(native(url: "rediss://h", ssl_params: { verify_mode: OpenSSL::SSL::VERIFY_NONE })[:verify]).to be(false)
  end

  it "reads sentinels in redis-client's and redis-rb's shapes, the master's name from name: or the URL" do
    n = native(url: "redis://:pw@mymaster/1", sentinels: [{ host: "s1", port: 26_380, password: "sp" }, "s2:26381", "redis://s3"],
               role: :master)
    expect(n).to include(master_name: "mymaster", db: 1, password: "pw", sentinel_password: "sp",
                         sentinels: [["s1", 26_380], ["s2", 26_381], ["s3", 26_379]])
    expect(native(name: "other", sentinels: ["s1:1"], sentinel_username: "u", sentinel_password: "p"))
      .to include(master_name: "other", sentinel_username: "u", sentinel_password: "p")
  end

  it "treats redis-client's user \"default\" as no user: a password alone logs in as it" do
    expect(native(url: "redis://h", username: "default", password: "pw")[:username]).to be_nil
  end

  it "accepts and ignores the pool's and the client's own keys, so Sidekiq's Hash can be given as it is" do
    expect { native(url: "redis://h", size: 25, network_timeout: 3, pool_timeout: 1, driver: :ruby, reconnect_attempts: 2) }
      .not_to raise_error
  end

  {
    { hots: "h" } => /unknown key :hots/,
    { url: "http://u:topsecret@h" } => %r{url must start with redis://},
    { port: 70_000 } => /port must be an Integer in 1\.\.65535, got 70000/,
    { db: -1 } => /db must be an Integer/,
    { ssl: "yes" } => /ssl must be true or false/,
    { url: "rediss://h", ssl_params: { ca_file: "/nonexistent/ca.pem" } } => %r{ssl_params\[:ca_file\] "/nonexistent/ca.pem" is not a readable file},
    { url: "rediss://h", ssl_params: { verify_hostname: false } } => /verify_hostname, which Killer does not support/,
    { sentinels: [] } => /sentinels must be a non-empty Array/,
    { sentinels: ["s:1"], role: :replica } => /role must be :master/,
    { sentinels: ["s:1"] } => /needs the master's name/,
    { path: "/s.sock", ssl: true } => /cannot be used with ssl/,
    { password: "\xFF\xFE".b } => /password must be valid UTF-8 text/
  }.each do |hash, message|
    it "refuses #{hash.inspect[0, 60]} with an ArgumentError naming the key, never its password" do
      expect { described_class.new(hash) }.to raise_error(ArgumentError, message) { |e| expect(e.message).not_to include("topsecret") }
    end
  end

  it "lets Sidekiq's own options through leniently: what it cannot use is a warning" do
    lenient = described_class.new({ url: "redis://h", hots: 1, ssl_params: { ciphers: "x" } }, strict: false)
    expect(lenient.warnings).to include(/unknown key :hots/, /ciphers, which Killer does not support/)
    expect(lenient.to_native).to include(host: "h")
  end

  it "shows no password: to_s, inspect and redact say REDACTED" do
    o = described_class.new({ url: "redis://bob:hunter2@h:1/0", sentinels: ["s:1"], sentinel_password: "s3ntinel" })
    shown = [o.to_s, o.inspect, o.redact("AUTH hunter2 then s3ntinel, hunter%32")].join(" ")
    expect(shown).not_to include("hunter2", "s3ntinel")
    expect(o.redact("hunter2")).to eq("REDACTED")
    expect(described_class.redact_url("redis://:p%40ss@h/0")).to eq("redis://:REDACTED@h/0")
    expect(described_class.new({ path: "/r.sock", password: "pw" }).to_s).to eq("unix:///r.sock?db=0 (password REDACTED)")
  end
end

RSpec.describe Killer::SidekiqRedis do
  # Sidekiq's own RedisConnection builds the connection each version
  # uses (redis-rb for 6, redis-client for 7 and 8); nothing connects.
  def read(options) = Sidekiq::RedisConnection.create(options).with { |conn| described_class.options_of(conn) }

  it "reads what Sidekiq was given, by its client's public readers" do
    expect(read(url: "redis://:pw@10.1.1.1:6390/5")).to include(host: "10.1.1.1", port: 6390, db: 5, password: "pw")
    expect(read(path: "/run/redis.sock")).to include(path: "/run/redis.sock")
    ssl = read(url: "rediss://h:6380", ssl_params: { verify_mode: OpenSSL::SSL::VERIFY_NONE })
    expect(ssl).to include(ssl: true, ssl_params: { verify_mode: OpenSSL::SSL::VERIFY_NONE })
  end

  it "reads sentinels and the master's name without asking the sentinels" do
    got = read(url: "redis://mymaster/2", sentinels: [{ host: "127.0.0.1", port: 1 }])
    expect(Killer::RedisOptions.new(got, strict: false).to_native)
      .to include(master_name: "mymaster", db: 2, sentinels: [["127.0.0.1", 1]])
  end
end

RSpec.describe Killer::Log do
  it "escapes control characters from any source, so nothing forges a line or a terminal escape" do
    io = StringIO.new
    described_class.write(Logger.new(io), :info, "jid\n1", "by eve\nE, [2026] ERROR -- : forged \e[31mred")
    expect(io.string.lines.size).to eq(1)
    expect(io.string).to include("by eve\\nE, [2026] ERROR -- : forged \\e[31mred", "jid=jid\\n1")
  end
end
