package web

import (
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/mirrorsentry/sentry/sentry/report"
)

// The uptake API of the bouncer admin app (Mozilla's tuxedo), which
// release automation polls before it moves an alias:
//
//	GET /api/uptake/?product=P&os=O[&fuzzy=1]
//
// answered the admin app's way, in its XML, so that a poller pointed at
// sentry works unchanged:
//
//	<?xml version="1.0" encoding="utf-8"?><mirror_uptake><item><available>20</available><product>Firefox-1.5</product><total>42433</total><os>win</os></item></mirror_uptake>
//
// one item per location that at least one active mirror holds (an active
// row), ordered by product name; available is the summed ratings of the
// active mirrors whose row for the location is active, total the summed
// ratings of every active mirror. product and os match names exactly, or,
// when fuzzy has any value at all, by substring in any case (as the admin
// app, fuzzy=0 and fuzzy=false turn it on too). Without product and os,
// or when nothing matches, the answer is 400 with
// <error number="101|102">…</error>. With Accept: application/json, the
// same query answers with every location of the matching products and
// operating systems, each with the admin app's numbers and sentry's
// verified, eligible uptake (report.UptakeItem).

// xmlEscape escapes text as the admin app's XML writer (Python's
// minidom) does.
var xmlEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", "\"", "&quot;", ">", "&gt;")

const xmlHead = `<?xml version="1.0" encoding="utf-8"?>`

func (s *Server) apiUptake(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	query := report.UptakeQuery{Product: q.Get("product"), OS: q.Get("os"), Fuzzy: q.Get("fuzzy") != ""}
	asJSON := wantsJSON(r.Header.Get("Accept"))
	up, err := s.rep.LocationUptake(r.Context(), query)
	var ue *report.UptakeError
	switch {
	case errors.As(err, &ue) && asJSON:
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = report.WriteJSON(w, map[string]any{"error": ue.Message, "number": ue.Number})
		return
	case errors.As(err, &ue):
		writeXML(w, http.StatusBadRequest, xmlHead+`<error number="`+strconv.Itoa(ue.Number)+`">`+xmlEscape.Replace(ue.Message)+`</error>`)
		return
	case err != nil:
		s.fail(w, r, err, false)
		return
	}
	if asJSON {
		s.json(w, up)
		return
	}
	writeXML(w, http.StatusOK, uptakeXML(up.Items))
}

// uptakeXML is the admin app's <mirror_uptake>: an item per location some
// active mirror holds, its elements in the admin app's order.
func uptakeXML(items []report.UptakeItem) string {
	var b strings.Builder
	b.WriteString(xmlHead)
	n := 0
	for _, it := range items {
		if it.Holders == 0 {
			continue
		}
		if n == 0 {
			b.WriteString("<mirror_uptake>")
		}
		n++
		b.WriteString("<item><available>" + strconv.FormatInt(it.Available, 10) + "</available>" +
			"<product>" + xmlEscape.Replace(it.Product) + "</product>" +
			"<total>" + strconv.FormatInt(it.Total, 10) + "</total>" +
			"<os>" + xmlEscape.Replace(it.OS) + "</os></item>")
	}
	if n == 0 {
		b.WriteString("<mirror_uptake/>")
	} else {
		b.WriteString("</mirror_uptake>")
	}
	return b.String()
}

func writeXML(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

// wantsJSON reports whether an Accept header asks for application/json
// (and not at q=0).
func wantsJSON(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || mt != "application/json" {
			continue
		}
		if q, err := strconv.ParseFloat(params["q"], 64); err == nil && q == 0 {
			continue
		}
		return true
	}
	return false
}
