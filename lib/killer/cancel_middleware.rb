# frozen_string_literal: true

module Killer
  # Server middleware that makes every job cancellable without touching any
  # class:
  #
  #   Sidekiq.configure_server do |config|
  #     config.server_middleware { |chain| chain.add Killer::CancelMiddleware }
  #   end
  #
  # For ActiveJob jobs (run through Sidekiq's JobWrapper) the ActiveJob
  # job_id is accepted by Killer.cancel as well as the jid.
  class CancelMiddleware
    include ::Sidekiq::ServerMiddleware if defined?(::Sidekiq::ServerMiddleware)

    # Sidekiq passes chain.add's options as one positional Hash.
    def initialize(options = {})
      @options = options
    end

    # Runs the job so that Killer.cancel can stop it, by jid or, for
    # ActiveJob, by job_id. Called by Sidekiq for every job.
    def call(_worker, job, _queue, &block)
      Guard.run(Guard.ids_of(job), job["wrapped"] || job["class"], job["killer"], &block)
    end
  end
end
