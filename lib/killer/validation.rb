# frozen_string_literal: true

module Killer
  # Argument checks shared by the public API and the configuration. Each
  # raises ArgumentError naming the value, before anything reaches Redis.
  module Validation
    module_function

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

    def seconds!(name, value, min:, max:, allow_nil: false)
      return nil if value.nil? && allow_nil

      unless value.is_a?(Numeric) && value.real? && value.to_f.finite? && value >= min && value <= max
        raise ArgumentError, "#{name} must be a number of seconds between #{min} and #{max}, got #{value.inspect}"
      end

      value.to_f
    end
  end
end
