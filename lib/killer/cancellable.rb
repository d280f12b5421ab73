# frozen_string_literal: true

module Killer
  # Makes a worker's running jobs cancellable with Killer.cancel(jid):
  #
  #   class ReportJob
  #     include Sidekiq::Job
  #     include Killer::Cancellable
  #     def perform(id) = build_report(id)
  #   end
  #
  # `perform` is wrapped wherever it is defined (before or after the
  # include, in subclasses too); `perform_with_killer` is the wrapped call
  # and `perform_without_killer` runs the body unprotected. Works for
  # Sidekiq workers (jid) and ActiveJob jobs (job_id, provider_job_id).
  module Cancellable
    # Wraps `perform` of the including class (and its subclasses).
    def self.included(base)
      base.prepend(Wrap)
      base.extend(ClassMethods)
    end

    # Subclasses get the wrapper in front of their own `perform` too; what
    # each job needs from its class is read once per class.
    module ClassMethods
      # Puts the wrapper in front of the subclass's `perform` as well.
      def inherited(subclass)
        super
        subclass.prepend(Wrap)
      end

      # The class's name for logs (an anonymous class's inspect).
      def killer_name
        name || inspect
      end

      # `sidekiq_options killer: { ... }` of a Sidekiq worker; nil
      # otherwise (read each time: sidekiq_options may change).
      def killer_options
        return nil unless respond_to?(:get_sidekiq_options)

        options = get_sidekiq_options
        options["killer"] || options[:killer]
      end

      # Which of jid, job_id and provider_job_id this class's jobs have.
      def killer_id_methods
        @killer_id_methods ||= begin
          names = ID_METHODS.select { |m| method_defined?(m) }
          names == JID_ONLY ? JID_ONLY : names.freeze
        end
      end
    end

    # Prepended: runs `perform`'s body under Killer once per call (a
    # subclass's perform calling super is the same job). `super` from the
    # block reaches the body with no Method object made per job.
    module Wrap
      # The job's body, stoppable by Killer.cancel and its deadline.
      def perform(*args, **kwargs, &block)
        return super if @killer_wrapped

        @killer_wrapped = true
        begin
          Guard.run(killer_job_ids, self.class.killer_name, self.class.killer_options) { super(*args, **kwargs, &block) }
        ensure
          @killer_wrapped = false
        end
      end
    end

    # Runs `perform`'s body so that Killer.cancel (and a deadline) can stop
    # it: what `perform` does. Returns the body's value, or nil if the job
    # was cancelled (before it started, or while running).
    def perform_with_killer(*args, **kwargs, &block)
      perform(*args, **kwargs, &block)
    end

    # Runs `perform`'s body without Killer: no cancel, no deadline. For
    # tests and for callers that must not be interrupted.
    def perform_without_killer(*args, **kwargs, &block)
      was = @killer_wrapped
      @killer_wrapped = true
      perform(*args, **kwargs, &block)
    ensure
      @killer_wrapped = was
    end

    private

    # Every id Killer.cancel may be given for this job: its jid, and for
    # an ActiveJob its job_id and provider_job_id. A Sidekiq job has only a
    # jid (the common case, without the scan).
    def killer_job_ids
      names = self.class.killer_id_methods
      return [jid.to_s] if names.equal?(JID_ONLY) && jid

      ids = names.filter_map { |name| public_send(name)&.to_s }
      ids.reject!(&:empty?)
      ids.uniq
    end

    JID_ONLY = [:jid].freeze
    ID_METHODS = %i[jid job_id provider_job_id].freeze
  end
end
