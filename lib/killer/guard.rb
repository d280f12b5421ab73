# frozen_string_literal: true

module Killer
  # Where a job enters the killer's protection; shared by Cancellable and
  # CancelMiddleware. Reentrant: a job wrapped twice registers once.
  module Guard
    module_function

    def run(ids, class_name, &block)
      return yield if ids.empty? || Thread.current[:killer_job]

      runtime = Killer.job_runtime
      return yield unless runtime

      runtime.run_job(ids, class_name, &block)
    end
  end
end
