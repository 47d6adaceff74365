# Full-precision JSON writer and small helpers shared by the fixture scripts (sourced by
# make_fixtures.R, make_binary_fixtures.R and make_sensitivity_fixtures.R from their output folder,
# tests/reference). jsonlite caps numbers at 15 significant digits, hence this writer.
# Numbers: "%.17g" (round-trips exactly). NA -> null; Inf/-Inf/NaN -> the strings "Inf"/"-Inf"/"NaN".
# Arrays are R lists without names; scalars are length-1 atomic vectors.
jstr <- function(s) as.character(jsonlite::toJSON(s, auto_unbox = TRUE))
jnum <- function(x) {
  if (is.nan(x)) return('"NaN"')
  if (is.na(x)) return("null")
  if (is.infinite(x)) return(if (x > 0) '"Inf"' else '"-Inf"')
  sprintf("%.17g", as.double(x))
}
tojson <- function(x, ind = "") {
  ind2 <- paste0(ind, "  ")
  if (is.null(x)) return("null")
  if (is.list(x)) {
    if (length(x) == 0) return(if (is.null(names(x))) "[]" else "{}")
    if (!is.null(names(x))) {
      items <- vapply(names(x), function(n) paste0(ind2, jstr(n), ": ", tojson(x[[n]], ind2)), "")
      return(paste0("{\n", paste(items, collapse = ",\n"), "\n", ind, "}"))
    }
    # arrays of scalars on one line, arrays of objects one per line
    if (all(vapply(x, function(e) !is.list(e) && length(e) <= 1, TRUE))) {
      return(paste0("[", paste(vapply(x, tojson, ""), collapse = ", "), "]"))
    }
    items <- vapply(x, function(e) paste0(ind2, tojson(e, ind2)), "")
    return(paste0("[\n", paste(items, collapse = ",\n"), "\n", ind, "]"))
  }
  if (length(x) == 0) return("null")
  if (length(x) > 1) return(tojson(as.list(x), ind))   # an atomic vector: an array
  if (is.character(x)) return(jstr(x))
  if (is.logical(x)) return(if (is.na(x)) "null" else if (x) "true" else "false")
  jnum(x)
}
arr <- function(x) as.list(unname(as.double(x)))
nn <- function(x) if (is.null(x) || length(x) == 0 || is.na(x)) NULL else unname(as.double(x))  # NA -> null
f17 <- function(x) sprintf("%.17g", x)
