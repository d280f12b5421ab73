# frozen_string_literal: true

module Killer
  module Web
    # The CSS classes of the Sidekiq::Web the tab is drawn in. Sidekiq 6 and
    # 7 style Bootstrap 3's classes; Sidekiq 8 has its own stylesheet, with
    # plain tables, one kind of alert and `btn-inverse` for a secondary
    # button. Told apart by the stylesheet Sidekiq ships (bootstrap.css),
    # not by its version number. Classes only: Sidekiq 8's CSP allows no
    # inline style.
    module Style
      BOOTSTRAP = {
        notice: "alert alert-info", error: "alert alert-danger", error_label: nil,
        table: "table table-hover table-bordered table-striped", details: "table table-bordered",
        cancel_button: "btn btn-danger btn-xs", confirm_button: "btn btn-danger", back_button: "btn btn-default",
        cancelling: "label label-warning", field: "form-group", input: "form-control"
      }.freeze
      SIDEKIQ8 = {
        notice: "alert", error: "alert", error_label: "label label-danger",
        table: nil, details: nil,
        cancel_button: "btn btn-danger", confirm_button: "btn btn-danger", back_button: "btn btn-inverse",
        cancelling: "label label-warning", field: nil, input: "form-control"
      }.freeze

      module_function

      # The classes for this Sidekiq (one stat per page drawn).
      def classes
        bootstrap? ? BOOTSTRAP : SIDEKIQ8
      end

      # Whether this Sidekiq::Web ships Bootstrap 3 (Sidekiq up to 7.x).
      def bootstrap?(assets = ::Sidekiq::Web::ASSETS)
        File.exist?(File.join(assets, "stylesheets", "bootstrap.css"))
      end

      # ` class="..."` for `role`, or nothing where this Sidekiq styles the
      # bare element.
      def attr(role)
        css = classes.fetch(role)
        css ? %( class="#{css}") : ""
      end

      # The page's title, in the markup this Sidekiq's own pages use.
      def header(title_html)
        if bootstrap?
          %(<div class="row header"><div class="col-sm-8 pull-left flip"><h3 id="killer-title">#{title_html}</h3></div></div>)
        else
          %(<header><h2 id="killer-title">#{title_html}</h2></header>)
        end
      end

      # A section heading.
      def heading(text) = bootstrap? ? "<h4>#{text}</h4>" : "<h3>#{text}</h3>"
    end
  end
end
