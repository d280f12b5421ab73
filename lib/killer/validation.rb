# frozen_string_literal: true

require "etc"
require "socket"

module Killer
  # Argument checks shared by the public API and the configuration. Each
  # raises ArgumentError naming the value, before anything reaches Redis.
  module Validation
    module_function

    # `jid` if usable as a jid; else ArgumentError naming the value.
    def jid!(jid)
      unless jid.is_a?(String) && !jid.empty?
        raise ArgumentError, "jid must be a non-empty String (a Sidekiq jid or ActiveJob job_id), got #{jid.inspect}"
      end
      if jid.bytesize > Native::MAX_JID_BYTES
        raise ArgumentError, "jid must be at most #{Native::MAX_JID_BYTES} bytes, got #{jid.bytesize} bytes (#{jid[0, 32].inspect}...)"
      end
      raise ArgumentError, "jid must be valid #{jid.encoding}, got #{jid.inspect}" unless jid.valid_encoding?

      jid.encode(Encoding::UTF_8)
    rescue EncodingError
      raise ArgumentError, "jid must be convertible to UTF-8, got #{jid.inspect}"
    end

    # A String of at most `max` bytes in UTF-8 (who asked for a cancel, why).
    def text!(name, value, max:)
      raise ArgumentError, "#{name} must be a String, got #{value.inspect}" unless value.is_a?(String)

      value = value.encode(Encoding::UTF_8)
      raise ArgumentError, "#{name} must be at most #{max} bytes, got #{value.bytesize} bytes (#{value[0, 32].inspect}...)" if value.bytesize > max

      value
    rescue EncodingError
      raise ArgumentError, "#{name} must be convertible to UTF-8, got #{value.inspect}"
    end

    # Who asks, when the caller does not say: the OS user at this host.
    def default_requester
      user = ENV["USER"] || ENV["LOGNAME"] || Etc.getpwuid(Process.uid)&.name || "unknown"
      "#{user}@#{Socket.gethostname}"
    end

    # `value` as Float seconds within min..max; else ArgumentError naming
    # `name` and the value.
    def seconds!(name, value, min:, max:, allow_nil: false)
      return nil if value.nil? && allow_nil

      unless value.is_a?(Numeric) && value.real? && value.to_f.finite? && value >= min && value <= max
        raise ArgumentError, "#{name} must be a number of seconds between #{min} and #{max}, got #{value.inspect}"
      end

      value.to_f
    end
  end
end
