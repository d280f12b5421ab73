# frozen_string_literal: true

require "erb"
require "socket"

module Killer
  module Web
    # The Killer tab's routes, registered into Sidekiq::Web (see
    # Killer::Web.install). The cancel form carries Sidekiq's CSRF token
    # where Sidekiq has one (`csrf_tag`, up to 8.0; 8.1 checks the browser's
    # Sec-Fetch-Site header): Sidekiq::Web refuses a forged POST.
    module Extension
      VIEWS = File.expand_path("../../../web/views", __dir__)
      # Templates are read once; Sidekiq renders a String template the same
      # way in 6, 7 and 8 (Sidekiq 6 ignores a `views:` option).
      TEMPLATES = %w[killer killer_cancel killer_cancel_class].to_h { |name| [name, File.read(File.join(VIEWS, "#{name}.erb"))] }.freeze

      # Called by Sidekiq::Web with its application class.
      def self.registered(app)
        app.get("/killer") do
          notice = session&.delete(:killer_notice)
          begin
            page = Overview.load
          rescue Killer::Error, ArgumentError => e
            # Whatever is wrong with Killer's Redis, the tab says so.
            page = nil
            notice = "Cannot read Killer's records: #{e.message}"
          end
          erb(TEMPLATES["killer"], locals: { page: page, notice: notice })
        end

        # The confirmation step: what will be cancelled, who asks and why.
        app.get("/killer/cancel") do
          Extension.confirm(self, request.params["jid"].to_s)
        end

        app.post("/killer/cancel") do
          form = request.params
          jid = form["jid"].to_s
          by = Extension.requester(request)
          begin
            Killer.cancel(jid, by: by, reason: form["reason"].to_s.strip)
          rescue ArgumentError, Killer::Error => e
            next Extension.confirm(self, jid, error: e.message, by: form["by"], reason: form["reason"])
          end
          if session
            session[:killer_by] = form["by"].to_s.strip
            session[:killer_notice] = "Cancel requested for #{jid} by #{by}."
          end
          redirect("#{root_path}killer")
        end

        app.get("/killer/cancel_class") do
          Extension.confirm_class(self, request.params["class"].to_s)
        end

        app.post("/killer/cancel_class") do
          form = request.params
          klass = form["class"].to_s
          by = Extension.requester(request)
          begin
            minutes = Float(form["minutes"].to_s, exception: false)
            raise ArgumentError, "minutes must be a number, got #{form["minutes"].to_s.inspect}" unless minutes

            Killer.cancel_class(klass, for: minutes * 60, by: by, reason: form["reason"].to_s.strip)
          rescue ArgumentError, Killer::Error => e
            next Extension.confirm_class(self, klass, error: e.message, form: form)
          end
          if session
            session[:killer_by] = form["by"].to_s.strip
            session[:killer_notice] = "Every #{klass} job cancelled for #{Format.duration(minutes * 60)} by #{by}."
          end
          redirect("#{root_path}killer")
        end

        app.post("/killer/resume_class") do
          klass = request.params["class"].to_s
          notice = begin
            Killer.resume_class(klass, by: Extension.default_requester(request)) ? "#{klass} resumed." : "#{klass} was not cancelled."
          rescue ArgumentError, Killer::Error => e
            "Cannot resume #{klass}: #{e.message}"
          end
          session[:killer_notice] = notice if session
          redirect("#{root_path}killer")
        end
      end

      # The confirmation page for cancelling class `klass` (shown again,
      # with `error`, when it was refused).
      def self.confirm_class(action, klass, error: nil, form: {})
        running = begin
          Overview.load(limit: 1).jobs.count { |j| j.class_name == klass }
        rescue Killer::Error, ArgumentError
          0
        end
        by = form["by"] || action.env["REMOTE_USER"] || action.session&.[](:killer_by)
        action.erb(TEMPLATES["killer_cancel_class"],
                   locals: { klass: klass, running: running, error: error, by: by.to_s,
                             reason: form["reason"].to_s, minutes: form.fetch("minutes", "60") })
      end

      # The confirmation page for `jid` (also shown again, with `error`,
      # when the cancel was refused).
      def self.confirm(action, jid, error: nil, by: nil, reason: nil)
        job = begin
          Overview.load(limit: 1).jobs.find { |j| j.jid == jid }
        rescue Killer::Error, ArgumentError
          nil
        end
        by ||= action.env["REMOTE_USER"] || action.session&.[](:killer_by)
        action.erb(TEMPLATES["killer_cancel"],
                   locals: { jid: jid, job: job, error: error, by: by.to_s, reason: reason.to_s })
      end

      # Who a form's cancel is recorded as: the name typed, else
      # default_requester.
      def self.requester(request)
        by = request.params["by"].to_s.strip
        by.empty? ? default_requester(request) : by
      end

      # Who a cancel from the Web tab is recorded as when the form leaves
      # "by" empty: the web server's user is no one in particular.
      def self.default_requester(request)
        "sidekiq-web (#{request.ip || Socket.gethostname})"
      end
    end
  end
end
