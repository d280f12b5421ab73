# frozen_string_literal: true

module Killer
  # Writes Killer's lines to Sidekiq's logger, tagged with the job's jid the
  # way Sidekiq tags its own lines (Sidekiq::Context). A logger whose
  # formatter does not print Sidekiq's context gets `jid=` in the text.
  module Log
    module_function

    # One line in `logger`, tagged with the jid the way Sidekiq tags its own.
    # Control characters are escaped: what a job's payload or a Redis
    # record holds never forges a line or a terminal escape.
    def write(logger, level, jid, message)
      jid = escape(jid) if jid
      line = "killer: #{escape(message)}"
      return logger.public_send(level, line) unless jid
      return logger.public_send(level, "#{line} jid=#{jid}") unless sidekiq_formatted?(logger)

      ::Sidekiq::Context.with(jid: jid) { logger.public_send(level, line) }
    end

    # `text` with control characters as \n, \e, \u0085... escapes.
    def escape(text)
      text = text.to_s
      text = text.dup.force_encoding(Encoding::UTF_8).scrub("?") unless text.valid_encoding?
      return text unless text.match?(Validation::CONTROL)

      text.gsub(Validation::CONTROL) { |c| c.dump[1..-2] }
    end

    # Whether `logger` formats Sidekiq's context (the jid) itself.
    def sidekiq_formatted?(logger)
      defined?(::Sidekiq::Logger::Formatters::Base) &&
        defined?(::Sidekiq::Context) && ::Sidekiq::Context.respond_to?(:with) &&
        logger.respond_to?(:formatter) && logger.formatter.is_a?(::Sidekiq::Logger::Formatters::Base)
    end
  end
end
