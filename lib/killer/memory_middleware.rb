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

    # A native call as the job starts and one as it ends (a memory read
    # each, the first skipped when a reading is under 1 ms old); the second
    # runs in `ensure`, so a job that raises is measured too.
    def call(_worker, job, _queue)
      runtime = Killer.job_runtime
      token = runtime&.memory_job_started(@options, job["wrapped"] || job["class"], job["jid"])
      yield
    ensure
      runtime.memory_job_finished(token) if token
    end

    # Sidekiq's startup event: builds every MemoryMiddleware in the chain
    # (raising ArgumentError for a bad option before any job runs) and
    # starts watching memory from boot.
    def self.boot(config)
      chain = config.respond_to?(:server_middleware) ? config.server_middleware : ::Sidekiq.server_middleware
      chain.entries.select { |e| e.klass <= self }.each do |entry|
        middleware = entry.make_new
        Killer.start.enable_memory(middleware.options)
      end
    end

    attr_reader :options
  end
end
