# frozen_string_literal: true

module Killer
  # Where a job enters the killer's protection; shared by Cancellable and
  # CancelMiddleware. Reentrant: a job wrapped twice registers once.
  module Guard
    module_function

    # `options`: the job's `killer` sidekiq_options (see JobOptions).
    def run(ids, class_name, options = nil, &block)
      return yield if ids.empty? || Thread.current[:killer_job]

      timeout, on_timeout = JobOptions.resolve(options)
      runtime = Killer.job_runtime
      return yield unless runtime

      # An anonymous class has no name; its inspect still tells a reader what it was.
      runtime.run_job(ids, class_name.to_s, timeout, on_timeout, &block)
    end
  end
end
