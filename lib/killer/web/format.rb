# frozen_string_literal: true

require "erb"
require "json"

module Killer
  module Web
    # How the tab writes values; plain Strings, escaped by the templates.
    module Format
      ARGS_PREVIEW = 120

      module_function

      # HTML-escaped, for the templates (not relying on Sidekiq's own `h`,
      # whose home moved between versions).
      def h(value) = ERB::Util.html_escape(value.to_s)

      # A job's arguments, cut to one line.
      def args(args)
        return "" if args.nil?

        text = Array(args).map { |a| arg(a) }.join(", ")
        text.size > ARGS_PREVIEW ? "#{text[0, ARGS_PREVIEW]}…" : text
      end

      # One argument as JSON (inspect if it is not JSON-able).
      def arg(value)
        JSON.generate(value)
      rescue StandardError
        value.inspect
      end

      # 12 ms, 3.4 s, 5 min 2 s, 1 h 3 min.
      def duration(seconds)
        return "" if seconds.nil?
        return format("%d ms", (seconds * 1000).round) if seconds < 1
        return format("%.1f s", seconds) if seconds < 60
        return format("%d min %d s", seconds / 60, seconds % 60) if seconds < 3600

        format("%d h %d min", seconds / 3600, (seconds % 3600) / 60)
      end

      # A Time as UTC, to the second.
      def time(t) = t.utc.strftime("%Y-%m-%d %H:%M:%S UTC")

      # 62.1 MB, 2048 MB.
      def mb(value)
        return "" if value.nil?

        "#{value == value.round ? value.round : value} MB"
      end
    end
  end
end
