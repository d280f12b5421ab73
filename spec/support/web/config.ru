# frozen_string_literal: true

# Sidekiq::Web with the Killer tab, as an app would mount it; the Web specs
# run it under WEBrick.
require "securerandom"
require "rack/session/cookie"
require "sidekiq/web"
require "killer/web"
Redis.silence_deprecations = true if defined?(Redis) && Redis.respond_to?(:silence_deprecations=)

# Killer's records may live in another Redis than Sidekiq's.
Killer.configure { |c| c.redis_url = ENV["KILLER_REDIS_URL"] } if ENV["KILLER_REDIS_URL"]

use Rack::Session::Cookie, secret: SecureRandom.hex(64), same_site: true, max_age: 86_400
run Sidekiq::Web
