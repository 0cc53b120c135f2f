/* http_static.c: the dashboard's pages and files (see http_ui.h), from
 * www/, compiled into funneld (daemon/CMakeLists.txt, cmake/embed.cmake).
 *
 *   /              the dashboard (www/index.html)
 *   /lead/ID       one lead (www/lead.html; its script reads ID from the
 *                  address and asks /api/lead/ID)
 *   /static/NAME   the scripts and the style
 *   /favicon.ico   the icon (SVG), so that no browser logs a missing one
 *
 * The pages hold no data: their scripts build every element from the API's
 * JSON with textContent, and the content security policy (http_ui.c)
 * allows scripts from funneld only.
 */
#include <stddef.h>
#include <string.h>

#include "http_ui_int.h"

#define S_FILE(name) \
    extern const char www_##name[]; \
    extern const size_t www_##name##_len;
S_FILE(index_html)
S_FILE(lead_html)
S_FILE(common_js)
S_FILE(app_js)
S_FILE(lead_js)
S_FILE(style_css)
S_FILE(favicon_svg)

#define S_HTML "text/html; charset=utf-8"
#define S_JS "text/javascript; charset=utf-8"

static const struct {
    const char *path;            /* exact, or a prefix when it ends with '/' */
    const char *type;
    const char *data;
    const size_t *len;
} s_files[] = {
    {"/", S_HTML, www_index_html, &www_index_html_len},
    {"/lead/", S_HTML, www_lead_html, &www_lead_html_len},
    {"/static/common.js", S_JS, www_common_js, &www_common_js_len},
    {"/static/app.js", S_JS, www_app_js, &www_app_js_len},
    {"/static/lead.js", S_JS, www_lead_js, &www_lead_js_len},
    {"/static/style.css", "text/css; charset=utf-8", www_style_css, &www_style_css_len},
    {"/favicon.ico", "image/svg+xml", www_favicon_svg, &www_favicon_svg_len},
    {"/static/favicon.svg", "image/svg+xml", www_favicon_svg, &www_favicon_svg_len},
};

bool http_static_handle(http_ui_t *self, struct evhttp_request *req, const char *path)
{
    for (size_t i = 0; i < sizeof s_files / sizeof s_files[0]; i++) {
        const char *p = s_files[i].path;
        size_t n = strlen(p);
        bool prefix = n > 1 && p[n - 1] == '/';
        if (prefix ? strncmp(path, p, n) == 0 && path[n] != '\0' : strcmp(path, p) == 0) {
            http_ui_send(req, 200, "OK", s_files[i].type, s_files[i].data, *s_files[i].len);
            return true;
        }
    }
    return false;
}
