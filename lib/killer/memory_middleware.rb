# frozen_string_literal: true

module Killer
  # Lets a bloated Sidekiq process recycle itself safely:
  #
  #   Sidekiq.configure_server do |config|
  #     config.server_middleware do |chain|
  #       chain.add Killer::MemoryMiddleware, max_rss_mb: 2048
  #     end
  #   end
  #
  # Over the limit for `grace` (or over `hard_rss_mb`): a full GC and a
  # second look, then, only with a restart slot and enough other live
  # processes, quiet → drain → TERM → SIGKILL. See the README for options.
  class MemoryMiddleware
    include ::Sidekiq::ServerMiddleware if defined?(::Sidekiq::ServerMiddleware)

    # Sidekiq builds one instance per job, passing chain.add's options as
    # one Hash; validated options are cached per distinct Hash.
    def initialize(options = {})
      @options = Killer.configuration.memory_options(options)
    end

    # Registers the job with the core as it starts (with the memory then)
    # and reports its end (what it grew the process by): the job's two
    # native calls, shared with Killer::Cancellable or CancelMiddleware
    # inside it, which the core is told about here when this can know
    # (a worker including Cancellable, CancelMiddleware in the chain).
    def call(worker, job, _queue, &block)
      return yield if Thread.current[:killer_job] # an outer wrapper registered it

      runtime = Killer.job_runtime
      return yield unless runtime

      runtime.enable_memory(@options)
      class_name = job["wrapped"] || job["class"]
      return runtime.measure(Guard.ids_of(job), class_name, &block) unless worker.is_a?(Cancellable) || Killer.configuration.cancel_middleware

      runtime.run_job(Guard.ids_of(job), class_name, JobOptions.resolve(job["killer"]).first, &block)
    end

    # Sidekiq's startup event: builds every MemoryMiddleware in the chain
    # (raising ArgumentError for a bad option before any job runs) and
    # starts watching memory from boot.
    def self.boot(config)
      chain = config.respond_to?(:server_middleware) ? config.server_middleware : ::Sidekiq.server_middleware
      entries = chain.entries
      # Every job goes through CancelMiddleware: this middleware can tell
      # the core at once, with no third native call from inside.
      Killer.configuration.cancel_middleware = entries.any? { |e| e.klass <= CancelMiddleware }
      entries.select { |e| e.klass <= self }.each do |entry|
        middleware = entry.make_new
        Killer.start.enable_memory(middleware.options)
      end
    end

    attr_reader :options
  end
end
