// Starts Swagger UI on /docs. A static file rather than an inline script, so that the
// page needs nothing beyond the contract's CSP (scripts from 'self' with the nonce).
const openapi = document.currentScript.dataset.openapi;

window.addEventListener("DOMContentLoaded", () => {
  window.ui = window.SwaggerUIBundle({
    url: openapi,
    dom_id: "#swagger-ui",
    deepLinking: true,
    layout: "BaseLayout",
    presets: [window.SwaggerUIBundle.presets.apis, window.SwaggerUIBundle.SwaggerUIStandalonePreset],
    showExtensions: true,
    showCommonExtensions: true,
  });
});
