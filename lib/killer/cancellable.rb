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

    # Subclasses get the wrapper in front of their own `perform` too.
    module ClassMethods
      # Puts the wrapper in front of the subclass's `perform` as well.
      def inherited(subclass)
        super
        subclass.prepend(Wrap)
      end
    end

    # Prepended: routes `perform` through `perform_with_killer` once.
    module Wrap
      # Runs the job through perform_with_killer, once per call.
      def perform(*args, **kwargs, &block)
        return super if @killer_wrapped

        perform_with_killer(*args, **kwargs, &block)
      end
    end

    # Runs `perform`'s body so that Killer.cancel (and a deadline) can stop
    # it. Returns the body's value, or nil if the job was cancelled (before
    # it started, or while running). What `perform` calls.
    def perform_with_killer(*args, **kwargs, &block)
      outer = !@killer_wrapped
      @killer_wrapped = true
      Guard.run(killer_job_ids, self.class.name || self.class.inspect, killer_options) { perform_without_killer(*args, **kwargs, &block) }
    ensure
      @killer_wrapped = false if outer
    end

    # Runs `perform`'s body without Killer: no cancel, no deadline. For
    # tests and for callers that must not be interrupted.
    def perform_without_killer(*args, **kwargs, &block)
      body = method(:perform)
      body = body.super_method while body && body.owner == Wrap
      raise NoMethodError, "#{self.class} includes Killer::Cancellable but defines no perform" unless body

      was = @killer_wrapped
      @killer_wrapped = true
      body.call(*args, **kwargs, &block)
    ensure
      @killer_wrapped = was
    end

    private

    # `sidekiq_options killer: { ... }` of a Sidekiq worker; nil otherwise.
    def killer_options
      options = self.class.get_sidekiq_options if self.class.respond_to?(:get_sidekiq_options)
      options && (options["killer"] || options[:killer])
    end

    # Every id Killer.cancel may be given for this job.
    def killer_job_ids
      ids = []
      ids << jid if respond_to?(:jid)
      ids << job_id if respond_to?(:job_id)
      ids << provider_job_id if respond_to?(:provider_job_id)
      ids.compact.map(&:to_s).reject(&:empty?).uniq
    end
  end
end
