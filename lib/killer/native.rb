# frozen_string_literal: true

# The compiled core. In a checkout it is built by `rake compile` (bin/setup);
# in an installed gem, by RubyGems through ext/killer/extconf.rb.
begin
  require "killer/killer"
rescue LoadError => e
  raise LoadError, "sidekiq-killer's native extension is not built (#{e.message}); " \
                   "run bin/setup (or `rake compile`) in the checkout, or reinstall the gem"
end
