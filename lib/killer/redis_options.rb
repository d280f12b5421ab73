# frozen_string_literal: true

require "uri"

module Killer
  # The Redis Killer talks to, in the shapes Sidekiq's `config.redis = {...}`
  # takes: `url:` (redis://, rediss://, unix://), `host:`/`port:`, `path:`
  # (a unix socket), `db:`, `username:`/`password:`, `ssl:` with
  # `ssl_params:` (`ca_file:`, `ca_path:`, `cert:`, `key:`, `verify_mode:`),
  # and `sentinels:` with the master's `name:` (or the URL's host),
  # `sentinel_username:`/`sentinel_password:` and `role: :master`.
  #
  # Built from a Hash given to Killer (strict: a typo or a wrong type is an
  # ArgumentError naming the key), from Sidekiq's own connection (lenient:
  # what Killer cannot use becomes a warning, never an error), or from a URL.
  # No method here returns or prints a password: #to_s and #inspect show
  # REDACTED as Sidekiq does, and #redact scrubs any text.
  class RedisOptions
    # Where Redis is and how to log in: the keys Killer reads.
    KEYS = %i[url host port path db username password ssl ssl_params sentinels
              name master_name role sentinel_username sentinel_password].freeze
    # Keys of Sidekiq's pool or of the Redis client (sizes, timeouts, driver,
    # reconnects...): accepted and ignored, so the Hash given to Sidekiq can
    # be given to Killer as it is. Killer's own timeout is network_timeout.
    CLIENT_KEYS = %i[size pool_timeout pool_name network_timeout timeout connect_timeout
                     read_timeout write_timeout driver id reconnect_attempts reconnect_delay
                     reconnect_delay_max tcp_keepalive logger protocol custom inherit_socket
                     idle_timeout driver_info circuit_breaker middlewares client_implementation
                     command_builder namespace scheme].freeze
    # The ssl_params Killer honours (OpenSSL's names).
    SSL_KEYS = %i[ca_file ca_path cert key verify_mode].freeze
    SCHEMES = %w[redis rediss unix].freeze
    REDACTED = "REDACTED"
    DEFAULT_URL = "redis://localhost:6379/0"

    # `hash` in Sidekiq's shape (Symbol or String keys). `strict: false`
    # (for what Sidekiq was given) turns every problem into a #warnings line.
    def initialize(hash, strict: true, url_name: "redis url")
      @strict = strict
      @url_name = url_name
      @warnings = []
      raise ArgumentError, "redis must be a Hash (as Sidekiq's config.redis), got #{hash.class}" unless hash.is_a?(Hash)

      options = symbolize(hash)
      # Sentinels speak TLS only when ssl: is given, not for a rediss:// URL
      # (as redis-client decides).
      @sentinel_ssl = options[:ssl] == true
      options = from_url(options[:url]).merge(options.compact) if options[:url]
      @native = build(options).freeze
      freeze
    end

    # From a redis://, rediss:// or unix:// URL.
    def self.from_url(url, strict: true)
      raise ArgumentError, "redis_url must be a String, got #{url.inspect}" if strict && !url.is_a?(String)

      new({ url: url }, strict: strict, url_name: "redis_url")
    end

    # REDIS_URL from `env` if set, else redis://localhost:6379/0.
    def self.from_env(env)
      url = env.fetch("REDIS_URL", nil)
      from_url(url.nil? || url.empty? ? DEFAULT_URL : url)
    end

    # Problems met while reading Sidekiq's options (lenient mode only).
    attr_reader :warnings

    # The Hash the native core takes (settings.rs reads it). Holds secrets:
    # never log it.
    def to_native
      @native
    end

    # The password Redis is logged in with (nil without one).
    def password
      @native[:password]
    end

    # Where Redis is, as Sidekiq logs it: the password shows as REDACTED.
    def to_s
      n = @native
      auth = userinfo(n[:username], n[:password])
      scheme = n[:ssl] ? "rediss" : "redis"
      if n[:sentinels]
        nodes = n[:sentinels].map { |h, p| "#{h}:#{p}" }.join(",")
        "#{scheme}://#{auth}#{n[:master_name]}/#{n[:db]} via sentinels #{nodes}"
      elsif n[:path]
        login = [n[:username] && "user #{n[:username]}", n[:password] && "password #{REDACTED}"].compact
        "unix://#{n[:path]}?db=#{n[:db]}#{login.empty? ? "" : " (#{login.join(", ")})"}"
      else
        host = n[:host].include?(":") ? "[#{n[:host]}]" : n[:host]
        "#{scheme}://#{auth}#{host}:#{n[:port]}/#{n[:db]}"
      end
    end

    def inspect = "#<#{self.class.name} #{self}>"

    # `text` with every password of these options replaced by REDACTED.
    def redact(text)
      secrets = [@native[:password], @native[:sentinel_password], @native[:key]].compact.reject(&:empty?)
      secrets.reduce(text.to_s) do |out, secret|
        [secret, URI.encode_www_form_component(secret), escape_userinfo(secret)].uniq.reduce(out) do |o, form|
          o.gsub(form, REDACTED)
        end
      end
    end

    # A URL's text with its password replaced, for messages about a URL that
    # could not be read.
    def self.redact_url(url)
      url.to_s.sub(%r{\A([a-z+]+://[^:/@]*:)[^@/]*@}i) { "#{Regexp.last_match(1)}#{REDACTED}@" }
             .sub(%r{\A([a-z+]+://)([^:/@]+)@}i) { "#{Regexp.last_match(1)}#{REDACTED}@" }
    end

    private

    def problem(message)
      raise ArgumentError, (message.start_with?("redis_url") ? message : "redis #{message}") if @strict

      @warnings << message
      nil
    end

    # "redis_url" for the shorthand setting, "url" inside a redis Hash.
    def url_label = @url_name == "redis_url" ? "redis_url" : "url"

    def symbolize(hash)
      hash.each_with_object({}) do |(key, value), out|
        name = key.respond_to?(:to_sym) ? key.to_sym : key
        if KEYS.include?(name)
          out[name] = value
        elsif !CLIENT_KEYS.include?(name)
          problem("has an unknown key #{key.inspect} (Killer reads #{KEYS.join(", ")})")
        end
      end
    end

    def from_url(url)
      return problem("#{url_label} must be a String, got #{url.inspect}") || {} unless url.is_a?(String)

      uri = parse_uri(url) or return {}
      unless SCHEMES.include?(uri.scheme)
        return problem("#{url_label} must start with #{SCHEMES.map { |s| "#{s}://" }.join(", ")}, got #{RedisOptions.redact_url(url).inspect}") || {}
      end

      parts = { ssl: uri.scheme == "rediss" }
      if uri.scheme == "unix"
        parts[:path] = [uri.host, uri.path].compact.join
        db = URI.decode_www_form(uri.query.to_s).to_h["db"]
        parts[:db] = db if db
      else
        parts[:host] = uri.hostname unless uri.hostname.to_s.empty?
        parts[:port] = uri.port if uri.port
        db = uri.path.to_s.delete_prefix("/")
        parts[:db] = db unless db.empty?
      end
      if uri.password
        parts[:password] = unescape(uri.password)
        parts[:username] = unescape(uri.user) unless uri.user.to_s.empty?
      elsif uri.user && !uri.user.empty?
        parts[:password] = unescape(uri.user) # redis://password@host, as Redis clients read it
      end
      parts
    end

    def parse_uri(url)
      URI.parse(url)
    rescue URI::InvalidURIError
      problem("#{url_label} is not a URL: #{RedisOptions.redact_url(url).inspect}")
    end

    def unescape(text) = URI.decode_www_form_component(text.gsub("+", "%2B"))

    def build(o)
      native = { db: integer(o, :db, 0, 0..1_000_000) || 0,
                 username: string(o, :username), password: secret(o, :password, o[:username]) }
      # "default" is who a password alone logs in as (redis-client names it).
      native[:username] = nil if native[:username] == "default"
      native.merge!(ssl(o))
      return native.merge!(sentinels(o)) if o[:sentinels]

      if o[:path]
        path = string(o, :path)
        native[:path] = path if path && !path.empty?
      end
      native[:host] = string(o, :host) || "localhost"
      native[:port] = integer(o, :port, 6379, 1..65_535) || 6379
      problem("host must not be empty") if native[:host].empty? && !native[:path]
      if native[:path] && native[:ssl]
        problem("path (a unix socket) cannot be used with ssl")
        native[:ssl] = false
      end
      native
    end

    def sentinels(o)
      list = o[:sentinels]
      unless list.is_a?(Array) && !list.empty?
        problem("sentinels must be a non-empty Array of { host:, port: } Hashes or \"host:port\" Strings, got #{list.inspect}")
        return {}
      end

      nodes = list.map { |s| sentinel_node(s) }.compact
      role = o[:role]
      if role && !%w[master].include?(role.to_s)
        problem("role must be :master (Killer writes, so it needs the master), got #{role.inspect}")
      end
      name = o[:name] || o[:master_name] || o[:host]
      problem("with sentinels needs the master's name (name:, or the URL's host)") unless name.is_a?(String) && !name.empty?
      password = secret(o, :sentinel_password, o[:sentinel_username]) || sentinel_field(list, :password)
      username = string(o, :sentinel_username) || sentinel_field(list, :username)
      username = nil if username == "default"
      { sentinels: nodes, master_name: name.to_s, sentinel_username: username,
        sentinel_password: password, sentinel_ssl: @sentinel_ssl }
    end

    def sentinel_node(entry)
      host, port =
        case entry
        when Hash then [entry[:host] || entry["host"], entry[:port] || entry["port"] || 26_379]
        when String
          uri = entry.include?("://") ? URI.parse(entry) : URI.parse("redis://#{entry}")
          [uri.hostname, uri.port || 26_379]
        end
      port = Integer(port, exception: false)
      return problem("sentinels has an entry Killer cannot read: #{RedisOptions.redact_url(entry.inspect)}") unless host.is_a?(String) && !host.empty? && port&.between?(1, 65_535)

      [host, port]
    rescue URI::InvalidURIError
      problem("sentinels has an entry that is not host:port: #{RedisOptions.redact_url(entry.inspect)}")
    end

    # redis-rb puts a sentinel's password in each sentinel's Hash.
    def sentinel_field(list, key)
      list.map { |s| s.is_a?(Hash) ? s[key] || s[key.to_s] : nil }.compact.first
    end

    def ssl(o)
      enabled = o.key?(:ssl) ? o[:ssl] : false
      unless [true, false, nil].include?(enabled)
        problem("ssl must be true or false, got #{enabled.inspect}")
        enabled = false
      end
      native = { ssl: enabled == true, verify: true }
      params = o[:ssl_params]
      return native if params.nil?
      return native.tap { problem("ssl_params must be a Hash, got #{params.class}") } unless params.is_a?(Hash)

      params.each do |key, value|
        name = key.respond_to?(:to_sym) ? key.to_sym : key
        unless SSL_KEYS.include?(name)
          problem("ssl_params has #{key.inspect}, which Killer does not support (it honours #{SSL_KEYS.join(", ")})")
          next
        end
        ssl_param(native, name, value)
      end
      native
    end

    def ssl_param(native, name, value)
      case name
      when :ca_file then native[:ca_file] = readable(value, "ssl_params[:ca_file]", :file?)
      when :ca_path then native[:ca_path] = readable(value, "ssl_params[:ca_path]", :directory?)
      when :cert then native[:cert] = pem(value, "ssl_params[:cert]", "certificate")
      when :key then native[:key] = pem(value, "ssl_params[:key]", "private key")
      when :verify_mode then native[:verify] = verify(value)
      end
    end

    def verify(value)
      none = defined?(OpenSSL::SSL::VERIFY_NONE) ? OpenSSL::SSL::VERIFY_NONE : 0
      return false if value == none || value.to_s.casecmp?("none")
      return true if value.is_a?(Integer) || value.to_s.casecmp?("peer")

      problem("ssl_params[:verify_mode] must be OpenSSL::SSL::VERIFY_NONE or VERIFY_PEER, got #{value.inspect}")
      true
    end

    def readable(value, name, kind)
      return problem("#{name} must be a String path, got #{value.class}") unless value.is_a?(String)
      return value if File.public_send(kind, value) && File.readable?(value)

      problem("#{name} #{value.inspect} is not a readable #{kind == :file? ? "file" : "directory"}")
      value
    end

    # OpenSSL objects (what ssl_params hold) or PEM text.
    def pem(value, name, what)
      return value.to_pem if value.respond_to?(:to_pem)
      return value if value.is_a?(String) && value.include?("-----BEGIN")

      problem("#{name} must be an OpenSSL #{what} object or PEM text, got #{value.class}")
    end

    def string(o, key)
      value = o[key]
      return nil if value.nil?
      return problem("#{key} must be a String, got #{value.class}") unless value.is_a?(String) || value.is_a?(Symbol)

      Validation.utf8!(key.to_s, value.to_s)
    rescue ArgumentError => e
      problem(e.message)
    end

    # A password: a String, or (redis-client's form) something callable.
    def secret(o, key, username)
      value = o[key]
      value = value.call(username) if value.respond_to?(:call)
      return nil if value.nil? || value == ""
      return problem("#{key} must be a String, got #{value.class}") unless value.is_a?(String)

      begin
        Validation.utf8!(key.to_s, value)
      rescue ArgumentError
        problem("#{key} must be valid UTF-8 text") # never shown: it is a secret
      end
    end

    def integer(o, key, default, range)
      value = o.fetch(key, default)
      value = default if value.nil?
      number = value.is_a?(String) && value.match?(/\A\d+\z/) ? value.to_i : value
      return number if number.is_a?(Integer) && range.cover?(number)

      problem("#{key} must be an Integer in #{range}, got #{value.inspect}")
    end

    def userinfo(username, password)
      return "" unless username || password

      "#{username}#{password ? ":#{REDACTED}" : ""}@"
    end

    def escape_userinfo(secret)
      secret.gsub(/[^a-zA-Z0-9\-._~]/) { |c| c.bytes.map { |b| format("%%%02X", b) }.join }
    end
  end
end
