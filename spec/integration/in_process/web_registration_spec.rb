# frozen_string_literal: true

require "killer/web"

# The Killer tab registered in this leg's real Sidekiq::Web (6.4.1, 7.3.2 or
# 8.1.7), serving its page through Rack; spec/unit/web_compat_spec.rb holds
# the signatures no leg runs.
RSpec.describe "Killer::Web in this Sidekiq" do
  it "registers the tab in this Sidekiq, whose Web app then serves its page" do
    require "rack/mock"
    require "rack/session/cookie"
    expect(Sidekiq::Web.tabs).to include("Killer" => "killer")
    app = Rack::Builder.new do
      use Rack::Session::Cookie, secret: SecureRandom.hex(64)
      run Sidekiq::Web
    end
    res = Rack::MockRequest.new(app).get("/killer")
    expect(res.status).to eq(200)
    expect(res.body).to include(%(id="killer-title"), "Running cancellable jobs")
  end
end
