# frozen_string_literal: true

# Sidekiq::Web with the Killer tab, as an app would mount it; the Web specs
# run it under WEBrick.
require "securerandom"
require "rack/session/cookie"
require "sidekiq/web"
require "killer/web"
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

use Rack::Session::Cookie, secret: SecureRandom.hex(64), same_site: true, max_age: 86_400
run Sidekiq::Web
