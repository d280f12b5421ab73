# frozen_string_literal: true

require "etc"
require "socket"

module Killer
  # Argument checks shared by the public API and the configuration. Each
  # raises ArgumentError naming the value, before anything reaches Redis.
  module Validation
    module_function

    # Control characters (C0, DEL, C1): a newline or an ANSI escape in a
    # name or a reason would forge lines in Sidekiq's log and in terminals.
    CONTROL = /[\u0000-\u001f\u007f-\u009f]/

    # `jid` if usable as a jid; else ArgumentError naming the value.
    def jid!(jid)
      unless jid.is_a?(String) && !jid.empty?
        raise ArgumentError, "jid must be a non-empty String (a Sidekiq jid or ActiveJob job_id), got #{jid.inspect}"
      end
      if jid.bytesize > Native::MAX_JID_BYTES
        raise ArgumentError, "jid must be at most #{Native::MAX_JID_BYTES} bytes, got #{jid.bytesize} bytes (#{jid[0, 32].inspect}...)"
      end

      plain!("jid", utf8!("jid", jid))
    end

    # A job class's name (a Class, or its name as a String), as
    # Killer.cancel_class takes it.
    def class_name!(value)
      value = value.name if value.is_a?(Module) && value.name
      unless value.is_a?(String) && !value.empty?
        raise ArgumentError, "class must be a job class or its name, got #{shown(value)}"
      end

      text!("class", value, max: Native::MAX_CLASS_BYTES)
    end

    # A String of at most `max` bytes in UTF-8 without control characters
    # (who asked for a cancel, why, a lease's name).
    def text!(name, value, max:)
      raise ArgumentError, "#{name} must be a String, got #{value.inspect}" unless value.is_a?(String)

      value = plain!(name, utf8!(name, value))
      raise ArgumentError, "#{name} must be at most #{max} bytes, got #{value.bytesize} bytes (#{value[0, 32].inspect}...)" if value.bytesize > max

      value
    end

    # `value` as valid UTF-8 (converted from another valid encoding), or
    # ArgumentError naming `name`: the native core takes UTF-8 only.
    def utf8!(name, value)
      # Binary (ASCII-8BIT) text, as sockets and forms hand it over, is
      # read as the UTF-8 it usually is.
      utf8 = value.encoding == Encoding::BINARY ? value.dup.force_encoding(Encoding::UTF_8) : value.encode(Encoding::UTF_8)
      raise ArgumentError, "#{name} must be valid UTF-8, got #{shown(value)}" unless utf8.valid_encoding?

      utf8
    rescue EncodingError
      raise ArgumentError, "#{name} must be convertible to UTF-8, got #{shown(value)}"
    end

    # `value` if it has no control character, else ArgumentError naming it.
    def plain!(name, value)
      return value unless value.match?(CONTROL)

      raise ArgumentError, "#{name} must not contain control characters (newlines, escapes), got #{shown(value)}"
    end

    # `value.inspect` with every control character escaped, for messages.
    def shown(value)
      value.inspect.gsub(CONTROL) { |c| format("\\u%04x", c.ord) }
    end

    # Who asks, when the caller does not say: the OS user at this host.
    def default_requester
      user = ENV["USER"] || ENV["LOGNAME"] || Etc.getpwuid(Process.uid)&.name || "unknown"
      "#{user}@#{Socket.gethostname}"
    end

    # `value` of setting `name` as Float seconds within the range the core
    # gives it (Native::SECONDS, or `as:` another setting's); else
    # ArgumentError naming `label` (default: the setting) and the value.
    def setting!(name, value, label: name, as: name)
      _default, min, max, optional = Native::SECONDS.fetch(as)
      seconds!(label, value, min: min, max: max, allow_nil: optional)
    end

    # A setting's default, as the core defines it (seconds, or nil).
    def default(name)
      Native::SECONDS.fetch(name).first
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
