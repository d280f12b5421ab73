# frozen_string_literal: true

module Killer
  # Raised inside a job's thread to stop it. Deliberately not a
  # StandardError: a job's `rescue => e` must not swallow it. Rescued by the
  # killer's wrapper, so Sidekiq sees a job that returned normally.
  class Cancelled < Exception # rubocop:disable Lint/InheritException
    # The id the cancel was requested for (Sidekiq jid or ActiveJob job_id).
    attr_reader :jid
    # 1 for the first raise; more when the job ignored earlier ones.
    attr_reader :attempt
    # Internal: which registration this raise belongs to.
    attr_reader :token

    # Built by Killer's dispatcher; `jid` names the cancelled job.
    def initialize(message = nil, jid: nil, attempt: 1, token: nil)
      @jid = jid
      @attempt = attempt
      @token = token
      super(message || "job #{jid} cancelled by Killer.cancel")
    end
  end

  # Raised inside a job that ran past its deadline (`sidekiq_options
  # killer: { timeout: ... }` or `Killer.configuration.default_timeout`).
  # With `on_timeout: :retry` (the default) it leaves `perform`, so Sidekiq
  # counts a failure and retries; with `:discard` the job just ends.
  class Timeout < Cancelled
    # Built by Killer's dispatcher when a deadline passes.
    def initialize(message = nil, jid: nil, attempt: 1, token: nil)
      super(message || "job #{jid} ran past its timeout", jid: jid, attempt: attempt, token: token)
    end
  end

  # Raised inside a Killer.exclusive block whose lease could not be renewed
  # (Redis unreachable or slow, or another holder took the key): the block
  # must stop at once. Like Cancelled, not a StandardError, so `rescue => e`
  # cannot swallow it; it leaves Killer.exclusive.
  class LeaseLost < Exception # rubocop:disable Lint/InheritException
    # The lease's name, and why it was lost.
    attr_reader :name, :reason
    # Internal: which holding this raise belongs to.
    attr_reader :id

    # Built by Killer's dispatcher when a renewal fails; `reason` says how.
    def initialize(name:, reason:, id: nil)
      @name = name
      @reason = reason
      @id = id
      super("lost lease #{name}: #{reason}")
    end
  end

  # Base class of every error the gem raises besides ArgumentError.
  class Error < StandardError; end

  # Redis could not be reached within `network_timeout`.
  class ConnectionError < Error; end

  # Redis answered with an error (wrong server, ACL, ...).
  class RedisError < Error; end

  # A native runtime was used in a forked child; Killer starts a new one there.
  class ForkError < Error; end
end
