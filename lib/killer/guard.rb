# frozen_string_literal: true

module Killer
  # Where a job enters Killer's protection; shared by Cancellable and
  # CancelMiddleware (MemoryMiddleware registers jobs too, see there). The
  # first wrapper of a job registers it with the core; inner ones find its
  # Frame on the thread and only open the body's window, or find the bare
  # token of a job MemoryMiddleware registered only to measure and arm it
  # (the outer wrapper could not know it was cancellable).
  module Guard
    module_function

    # `options`: the job's `killer` sidekiq_options (see JobOptions).
    def run(ids, class_name, options = nil, &block)
      return yield if ids.empty?

      frame = Thread.current[:killer_job]
      runtime = frame ? Killer.configuration.runtime_if_started : Killer.job_runtime
      return yield unless runtime

      timeout, on_timeout = JobOptions.resolve(options)
      # An anonymous class has no name; its inspect still tells a reader what it was.
      name = class_name.to_s
      if frame.is_a?(Integer) # the token of a job registered only to be measured
        return runtime.armed(frame, ids, name, timeout) { |f| runtime.body(f, name, on_timeout, timeout, &block) }
      end
      return runtime.body(frame, name, on_timeout, timeout, &block) if frame

      runtime.run_job(ids, name, timeout) { |f| runtime.body(f, name, on_timeout, timeout, &block) }
    end

    # Every id Killer.cancel may name a Sidekiq job hash by: its jid, and
    # for ActiveJob (run through Sidekiq's JobWrapper) its job_id and
    # provider_job_id.
    def ids_of(job)
      jid = job["jid"]
      return [jid] if !job["wrapped"] && jid.is_a?(String) && !jid.empty? # most jobs

      ids = [jid]
      first = job["args"].is_a?(Array) ? job["args"].first : nil
      ids << first["job_id"] << first["provider_job_id"] if job["wrapped"] && first.is_a?(Hash)
      ids.compact.map(&:to_s).reject(&:empty?).uniq
    end
  end
end
