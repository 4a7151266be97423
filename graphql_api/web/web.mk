# GraphiQL's browser assets, vendored at install time so the service serves them itself
# (no CDN at run time). Included by the Makefile; `install` depends on `web-vendor`.
WEB_DIR := graphql_api/web
WEB_VENDOR_STAMP := $(WEB_DIR)/vendor/.verified

.PHONY: web-vendor

web-vendor: $(WEB_VENDOR_STAMP)

$(WEB_VENDOR_STAMP): $(WEB_DIR)/package.json $(WEB_DIR)/package-lock.json $(WEB_DIR)/vendor-manifest.json $(WEB_DIR)/vendor.py
	@command -v npm >/dev/null 2>&1 || { \
		echo "make: npm was not found, so GraphiQL's pinned assets are not installed; the API and the demo app" >&2; \
		echo "      at / work without them. To get GraphiQL: install Node.js/npm, then run make web-vendor." >&2; \
		exit 0; }
	npm ci --prefix $(WEB_DIR) --no-audit --no-fund
	$(or $(PYTHON),python3) $(WEB_DIR)/vendor.py
	touch $@
