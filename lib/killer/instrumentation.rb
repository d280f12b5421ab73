# frozen_string_literal: true

module Killer
  # Killer's events, for metrics and logs. Each goes to
  # ActiveSupport::Notifications as "<name>.killer" when ActiveSupport is
  # loaded (Killer never loads it), and to every Killer.subscribe block.
  # Emitted from the thread that saw it — the caller's (Killer.cancel), the
  # job's (its end, its timeout), or the dispatcher's (a delivery, a
  # recycle step, a lease lost) — never from Rust. A subscriber that raises
  # is logged and skipped: it never breaks a job or the dispatcher.
  # Nothing is built when nobody listens.
  module Instrumentation
    # Every event, as named without the ".killer" suffix; payloads in the
    # README ("Instrumentation").
    EVENTS = %w[
      cancel_requested cancel_delivered cancel_done timeout recycle lease_acquired lease_lost
      class_cancelled class_resumed
    ].freeze
    NAMES = EVENTS.to_h { |e| [e, "#{e}.killer"] }.freeze

    module_function

    # Sends event `name` with the payload the block builds (called only if
    # someone listens).
    def emit(name, jid = nil)
      subscribers = Killer.configuration.subscribers
      notifications = notifications_for(name)
      return if subscribers.empty? && !notifications

      payload = yield
      subscribers.each do |subscriber|
        subscriber.call(name, payload)
      rescue StandardError => e
        failed(name, jid, e)
      end
      begin
        notifications&.instrument(NAMES.fetch(name), payload)
      rescue StandardError => e
        failed(name, jid, e)
      end
      nil
    end

    # Seconds from `at_ms` (ms since the epoch) to now, or nil.
    def since(at_ms)
      at_ms && [(Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond) - at_ms) / 1000.0, 0.0].max
    end

    # ActiveSupport::Notifications if it is loaded and someone listens to
    # `name`.
    def notifications_for(name)
      return nil unless defined?(::ActiveSupport::Notifications)

      n = ::ActiveSupport::Notifications
      n if n.notifier.listening?(NAMES.fetch(name))
    end

    def failed(name, jid, error)
      Log.write(Killer.configuration.logger, :error, jid,
                "a subscriber of #{NAMES.fetch(name)} raised #{error.class}: #{error.message} event=instrumentation.error")
    end
  end
end
