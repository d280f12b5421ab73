# frozen_string_literal: true

# ActiveJob jobs run through Sidekiq's adapter (Debian's ruby-activejob,
# no Rails): required by the spec, to enqueue, and by the `sidekiq` process
# it starts, to run them. Each reports by its ActiveJob job_id.
require_relative "app"
require "logger"
require "active_job"

ActiveJob::Base.queue_adapter = :sidekiq
ActiveJob::Base.logger = Logger.new(File::NULL)

# An export that sleeps in small steps until it is done or cancelled.
class ExportJob < ActiveJob::Base
  include Killer::Cancellable
  queue_as :default

  def perform(seconds)
    Report.event("started", job_id)
    deadline = Time.now + seconds
    sleep 0.01 while Time.now < deadline
    Report.event("finished", job_id)
  ensure
    Report.event("ensure", job_id)
  end
end
