#!/usr/bin/env Rscript
# Generate the metafor fixtures for influence(), leave1out(), cumul(), regtest() (both forms),
# rma(mods = ...) meta-regression and subgroup models, for EVERY tau2 estimator and test.
#
#   Rscript tests/reference/make_sensitivity_fixtures.R tests/reference      # a few minutes, deterministic
#
# Writes tests/reference/fixtures/sensitivity/<dataset>.json (format in README.md, section
# "Sensitivity, meta-regression and subgroup fixtures"). Datasets are metadat ones the main
# fixtures do not use for these analyses. Written for R 4.2.2 + metafor 3.8-1 + metadat (Debian
# r-cran-metafor). The Python tests read the JSON and never need R.
#
# Every ML/REML/PM/EB tau2 (main fit, every leave-one-out / cumulative / deletion subset, every
# regtest and meta-regression fit, every subgroup fit) is checked against the optimum of the
# (restricted) likelihood or the root of Q(tau2) = k - p found independently (fine log grid,
# uniroot on the score, cross-checked by optimize()). A fit where metafor is not at the optimum
# is refitted from tau2.init = the optimum and the fixture's notes say so.

args <- commandArgs(trailingOnly = TRUE)
outdir <- if (length(args) >= 1) args[1] else "tests/reference"
fixdir <- file.path(outdir, "fixtures", "sensitivity")
dir.create(fixdir, showWarnings = FALSE, recursive = TRUE)
suppressPackageStartupMessages(library(metafor))
source(file.path(outdir, "fixture_json.R"))

METHODS <- c("FE", "DL", "REML", "ML", "PM", "HS", "SJ", "EB", "HE")
TESTS <- c("z", "knha", "adhoc")
CTRL <- "threshold=1e-12, maxiter=10000, tol=1e-12"
CHECKED <- c("REML", "ML", "PM", "EB")   # iterative estimators whose optimum is verified
TOL_OPT <- 1e-9                          # |metafor - optimum| <= TOL_OPT * max(1, optimum)

run <- function(code, env) {
  warns <- character(0)
  val <- withCallingHandlers(eval(parse(text = code), envir = env),
                             warning = function(w) { warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") })
  list(value = val, warnings = unique(gsub("\n", " ", warns)))
}

# ---------------------------------------------------------------------------------------------------------
# Independent optimum of tau2 for a model with design X (intercept-only: X = 1)
# ---------------------------------------------------------------------------------------------------------
wls <- function(t, y, v, X) {
  w <- 1 / (v + t); A <- crossprod(X, w * X)
  b <- solve(A, crossprod(X, w * y)); list(w = w, A = A, r = c(y - X %*% b))
}
qX <- function(t, y, v, X) { f <- wls(t, y, v, X); sum(f$w * f$r^2) }
llX <- function(t, y, v, X, reml) {
  f <- wls(t, y, v, X)
  ll <- -0.5 * sum(log(v + t)) - 0.5 * sum(f$w * f$r^2)
  if (reml) ll <- ll - 0.5 * c(determinant(f$A)$modulus)
  ll
}
scX <- function(t, y, v, X, reml) {   # 2 d ll / d tau2: ||Py||^2 - sum(w) (ML) or - tr(P) (REML)
  f <- wls(t, y, v, X)
  s <- sum((f$w * f$r)^2) - sum(f$w)
  if (reml) s <- s + sum(diag(solve(f$A, crossprod(X, f$w^2 * X))))
  s
}
true_tau2 <- function(method, y, v, X = matrix(1, length(y), 1), ngrid = 3000) {
  k <- length(y); p <- ncol(X)
  if (!method %in% CHECKED || k <= p) return(NULL)
  y <- y - mean(y)   # every model here contains the intercept, so centring changes nothing but rounding
  up <- max(100, 100 * var(y), 100 * max(v))
  if (method %in% c("PM", "EB")) {
    if (qX(0, y, v, X) <= k - p) return(0)
    while (qX(up, y, v, X) > k - p) up <- 10 * up
    return(uniroot(function(t) qX(t, y, v, X) - (k - p), c(0, up), tol = 1e-15, maxiter = 10000)$root)
  }
  reml <- method == "REML"
  grid <- c(0, exp(seq(log(1e-10 * max(1e-6, min(v))), log(up), length.out = ngrid)))
  ll <- vapply(grid, function(t) llX(t, y, v, X, reml), 0)
  i <- which.max(ll)
  if (i == 1 && scX(0, y, v, X, reml) <= 0) return(0)
  lo <- grid[max(1, i - 1)]; hi <- grid[min(length(grid), i + 1)]
  root <- uniroot(scX, c(lo, hi), y = y, v = v, X = X, reml = reml, tol = 1e-15, maxiter = 10000)$root
  opt <- optimize(llX, c(lo, hi), y = y, v = v, X = X, reml = reml, maximum = TRUE, tol = 1e-14)$maximum
  if (abs(opt - root) > 1e-5 * max(1, root)) stop("grid/optimize/uniroot disagree: ", opt, " vs ", root)
  root
}
off_optimum <- function(tau2, truth) !is.null(truth) && !is.na(tau2) && abs(tau2 - truth) > TOL_OPT * max(1, truth)

# Fit `call` (a string evaluating to an rma object); if metafor is not at the optimum, refit from
# tau2.init = the optimum (Fisher scoring stays there). Returns list(res, call, notes).
fit_verified <- function(call, method, env, y, v, X = matrix(1, length(y), 1), label = "") {
  res <- run(call, env)$value
  truth <- true_tau2(method, y, v, X)
  if (!off_optimum(res$tau2, truth)) return(list(res = res, call = call, notes = character(0)))
  if (method == "PM") stop("PM root off in ", label, ": ", res$tau2, " vs ", truth)
  call2 <- sub(paste0(CTRL, ")"), paste0(CTRL, ", tau2.init=", f17(truth), ")"), call, fixed = TRUE)
  res2 <- run(call2, env)$value
  if (off_optimum(res2$tau2, truth)) stop("restart at the optimum failed: ", label)
  note <- sprintf("%s: metafor (%s) stopped at tau2=%s, the (restricted) likelihood optimum is %s; the fixture holds the optimum (refitted with tau2.init)",
                  label, call, f17(res$tau2), f17(truth))
  message("NOTE ", note)
  list(res = res2, call = call2, notes = note)
}

# ---------------------------------------------------------------------------------------------------------
# Intercept-only sensitivity analyses for one method x test
# ---------------------------------------------------------------------------------------------------------
ROWS <- function(x) list(estimate = arr(x$estimate), se = arr(x$se), stat = arr(if (is.null(x$zval)) x$tval else x$zval), pvalue = arr(x$pval),
                         ci_lower = arr(x$ci.lb), ci_upper = arr(x$ci.ub), q = arr(x$Q), q_pvalue = arr(x$Qp),
                         # FE fits: metafor's leave1out()/cumul() have no tau2 column; tau2 = 0 by definition
                         tau2 = arr(if (is.null(x$tau2)) rep(0, length(x$estimate)) else x$tau2),
                         i2 = arr(x$I2), h2 = arr(x$H2))

INFL <- function(inf) {
  ii <- inf$inf
  list(rstudent = arr(ii$rstudent), dffits = arr(ii$dffits), cooks_distance = arr(ii$cook.d), cov_r = arr(ii$cov.r),
       tau2_del = arr(ii$tau2.del), q_del = arr(ii$QE.del), hat = arr(ii$hat), weight = arr(ii$weight),
       dfbetas = arr(inf$dfbs$intrcpt), is_influential = as.list(unname(inf$is.infl)))
}
REGTEST <- function(rt, test) {
  list(stat = rt$zval, pvalue = rt$pval, df = if (test == "z") NULL else rt$dfs, slope = unname(coef(rt$fit)[2]),
       intercept = unname(coef(rt$fit)[1]), limit_estimate = unname(rt$est), limit_ci_lower = rt$ci.lb,
       limit_ci_upper = rt$ci.ub, tau2 = rt$fit$tau2)
}

# Rerun `fun` (leave1out, cumul, influence or regtest) on the full model refitted from tau2.init = `init`
# (Fisher scoring in every refit of the subsets then starts there). The full model must stay at its optimum.
rerun_from <- function(env, call, init, fun) {
  call2 <- sub(paste0(CTRL, ")"), paste0(CTRL, ", tau2.init=", f17(init), ")"), call, fixed = TRUE)
  env$res2 <- run(call2, env)$value
  if (abs(env$res2$tau2 - env$res$tau2) > TOL_OPT * max(1, env$res$tau2)) stop("full model moved: ", call2)
  list(value = run(paste0(fun, "(res2)"), env)$value, call = call2)
}

# Row-wise results of `fun` with every subset fit verified at its optimum: a row whose subset fit
# is off is taken from a rerun started at that subset's optimum (rows depend only on their subset fit
# and the full model). Returns list(block, notes).
verified_rows <- function(env, call, method, fun, conv, tau2key, idx_fun) {
  y <- env$dat$yi; v <- env$dat$vi
  block <- conv(run(paste0(fun, "(res)"), env)$value)
  notes <- character(0)
  for (i in seq_along(block[[tau2key]])) {
    ii <- idx_fun(i)
    if (length(ii) < 2 || !method %in% CHECKED) next
    tr <- true_tau2(method, y[ii], v[ii], ngrid = 1500)
    t0 <- block[[tau2key]][[i]]
    if (!is.na(t0) && !off_optimum(t0, tr)) next
    rr <- rerun_from(env, call, tr, fun)
    alt <- conv(rr$value)
    if (off_optimum(alt[[tau2key]][[i]], tr)) stop("rerun not at the optimum: ", fun, " ", i)
    for (nm in names(block)) if (is.list(block[[nm]])) {
      if (length(alt[[nm]]) < i) stop("short field ", nm, " in ", fun, ": ", length(alt[[nm]]), " ", method, " ", call)
      block[[nm]][[i]] <- alt[[nm]][[i]]
    }
    note <- sprintf("%s row %d: metafor's Fisher scoring stops at tau2=%s (a local optimum / boundary), the optimum is %s; the row holds the optimum, from %s(res2) with res2 <- %s",
                    fun, i, f17(t0), f17(tr), fun, rr$call)
    message("NOTE ", method, ": ", note)
    notes <- c(notes, note)
  }
  list(block = block, notes = notes)
}

sens_one <- function(env, method, test) {
  y <- env$dat$yi; v <- env$dat$vi; k <- length(y)
  call <- sprintf('rma(yi, vi, data=dat, method="%s", test="%s", level=0.95, control=list(%s))', method, test, CTRL)
  fv <- fit_verified(call, method, env, y, v, label = paste(method, test))
  env$res <- fv$res
  call <- fv$call
  l1 <- verified_rows(env, call, method, "leave1out", ROWS, "tau2", function(i) setdiff(seq_len(k), i))
  cu <- verified_rows(env, call, method, "cumul", ROWS, "tau2", function(i) seq_len(i))
  inf <- verified_rows(env, call, method, "influence", INFL, "tau2_del", function(i) setdiff(seq_len(k), i))
  rt <- REGTEST(run("regtest(res)", env)$value, test)
  notes <- c(fv$notes, l1$notes, cu$notes, inf$notes)
  rtruth <- true_tau2(method, y, v, cbind(1, sqrt(v)))
  if (off_optimum(rt$tau2, rtruth)) {
    rr <- rerun_from(env, call, rtruth, "regtest")
    note <- sprintf("regtest: metafor's meta-regression stops at tau2=%s, the optimum is %s; the fixture holds regtest(res2) with res2 <- %s",
                    f17(rt$tau2), f17(rtruth), rr$call)
    rt <- REGTEST(rr$value, test)
    if (off_optimum(rt$tau2, rtruth)) stop("regtest rerun not at the optimum")
    message("NOTE ", method, ": ", note)
    notes <- c(notes, note)
  }
  list(method = method, test = test, r_call = call,
       estimate = c(fv$res$beta), se = fv$res$se, tau2 = fv$res$tau2,
       leave1out = c(list(r_call = "leave1out(res)"), l1$block),
       cumul = c(list(r_call = "cumul(res)"), cu$block),
       influence = c(list(r_call = "influence(res)"), inf$block),
       regtest_rma = c(list(r_call = "regtest(res)"), rt),
       notes = paste(c(notes, if (method %in% CHECKED) "tau2 of the fit, of every leave-one-out, cumulative and deletion subset and of the regtest model verified at the optimum"), collapse = "; "))
}

# ---------------------------------------------------------------------------------------------------------
# Meta-regression and subgroup models
# ---------------------------------------------------------------------------------------------------------
mreg_fields <- function(res, names_py) {
  list(coef_names_r = as.list(rownames(res$beta)), coef_names = as.list(names_py),
       beta = arr(res$beta), se = arr(res$se), stat = arr(res$zval), pvalue = arr(res$pval),
       ci_lower = arr(res$ci.lb), ci_upper = arr(res$ci.ub), df = if (res$test == "z") NULL else res$ddf[1],
       qm = res$QM, qm_df = res$QMdf[1], qm_ddf = nn(res$QMdf[2]), qm_pvalue = res$QMp,
       qe = res$QE, qe_df = res$k - res$p, qe_pvalue = res$QEp, tau2 = res$tau2, tau2_se = nn(res$se.tau2),
       i2 = res$I2, h2 = res$H2,
       r2 = nn(res$R2),
       # fitstats() for both likelihoods, whatever the estimator (metafor evaluates them at its tau2)
       n_params = res$parms, fit_ml = FITSTATS(fitstats(res, REML = FALSE)), fit_reml = FITSTATS(fitstats(res, REML = TRUE)))
}
FITSTATS <- function(fs) {
  v <- unname(fs[, 1])   # rows logLik, deviance, AIC, BIC, AICc
  list(loglik = v[1], deviance = v[2], aic = v[3], bic = v[4], aicc = v[5])
}

mreg_model <- function(env, spec) {
  y <- env$dat$yi; v <- env$dat$vi
  X <- model.matrix(as.formula(spec$formula), data = env$dat)
  fits <- list()
  for (method in METHODS) for (test in TESTS) {
    call <- sprintf('rma(yi, vi, mods = %s, data=dat, method="%s", test="%s", level=0.95, control=list(%s))',
                    spec$formula, method, test, CTRL)
    fv <- fit_verified(call, method, env, y, v, X, label = paste(spec$name, method, test))
    f <- c(list(method = method, test = test, r_call = fv$call), mreg_fields(fv$res, spec$names_py))
    # R2 compares with the intercept-only model of the same method: verify its tau2 too
    if (method %in% CHECKED) {
      r0 <- run(sprintf('rma(yi, vi, data=dat, method="%s", control=list(%s))', method, CTRL), env)$value
      if (off_optimum(r0$tau2, true_tau2(method, y, v))) stop("R2 reference model off the optimum: ", spec$name, method)
    }
    f$notes <- paste(c(fv$notes, if (method %in% CHECKED) "tau2 (and the intercept-only tau2 of R2) verified at the optimum"), collapse = "; ")
    fits[[length(fits) + 1]] <- f
  }
  list(name = spec$name, formula = spec$formula, moderators = spec$moderators, fits = fits)
}

subgroup_one <- function(env, gvar, method, test) {
  y <- env$dat$yi; v <- env$dat$vi
  g <- as.character(env$dat[[gvar]]); lev <- unique(g)
  sep <- list(); notes <- character(0)
  for (L in lev) {
    call <- sprintf('rma(yi, vi, data=dat, subset=(%s=="%s"), method="%s", test="%s", level=0.95, control=list(%s))',
                    gvar, L, method, test, CTRL)
    sel <- g == L
    fv <- fit_verified(call, method, env, y[sel], v[sel], label = paste("subgroup", L, method, test))
    r <- fv$res; notes <- c(notes, fv$notes)
    sep[[L]] <- list(r_call = fv$call, k = r$k, estimate = c(r$beta), se = r$se, stat = r$zval, pvalue = r$pval,
                     ci_lower = r$ci.lb, ci_upper = r$ci.ub, tau2 = r$tau2, q = r$QE, q_pvalue = r$QEp, i2 = r$I2, h2 = r$H2)
  }
  est <- vapply(sep, function(x) x$estimate, 0); se <- vapply(sep, function(x) x$se, 0)
  u <- 1 / se^2; mub <- sum(u * est) / sum(u); qb <- sum(u * (est - mub)^2)
  X <- model.matrix(~ factor(g))
  mcall <- sprintf('rma(yi, vi, mods = ~ factor(%s), data=dat, method="%s", test="%s", level=0.95, control=list(%s))',
                   gvar, method, test, CTRL)
  fv <- fit_verified(mcall, method, env, y, v, X, label = paste("common tau2", method, test))
  m <- fv$res; notes <- c(notes, fv$notes)
  common <- list()
  for (L in lev) {
    r <- run(sprintf('rma(yi, vi, data=dat, subset=(%s=="%s"), tau2=%s, test="%s", level=0.95)', gvar, L, f17(m$tau2), test), env)$value
    common[[L]] <- list(estimate = c(r$beta), se = r$se, stat = r$zval, pvalue = r$pval, ci_lower = r$ci.lb, ci_upper = r$ci.ub)
  }
  list(method = method, test = test, separate = sep, q_between = qb, q_between_df = length(lev) - 1,
       q_between_pvalue = pchisq(qb, length(lev) - 1, lower.tail = FALSE),
       qe = m$QE, qe_df = m$k - m$p, qe_pvalue = m$QEp,
       common = c(list(r_call = fv$call, qm = m$QM, qm_df = m$QMdf[1], qm_ddf = nn(m$QMdf[2]), qm_pvalue = m$QMp,
                       tau2 = m$tau2, groups = common)),
       notes = paste(notes, collapse = "; "))
}

# ---------------------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------------------
BCG <- 'dat <- escalc(measure="RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg)'
DATASETS <- list(
  list(name = "collins1985a", setup = 'dat <- escalc(measure="OR", ai=b.xti, n1i=nti, ci=b.xci, n2i=nci, data=dat.collins1985a)',
       source = "metadat dat.collins1985a (diuretics in pregnancy, pre-eclampsia), log odds ratios via escalc(measure=\"OR\") (0.5 added to zero cells; the 2 trials without pre-eclampsia counts dropped)",
       sens = TRUE),
  list(name = "egger2001", setup = 'dat <- escalc(measure="OR", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=dat.egger2001)',
       source = "metadat dat.egger2001 (magnesium after myocardial infarction), log odds ratios via escalc(measure=\"OR\")",
       sens = TRUE),
  list(name = "bangertdrowns2004", setup = "dat <- dat.bangertdrowns2004; dat <- dat[!is.na(dat$length) & !is.na(dat$wic), ]",
       source = "metadat dat.bangertdrowns2004 (writing-to-learn interventions), standardized mean differences yi/vi as shipped, minus the studies with a missing length or wic moderator (so every model uses the same studies)",
       sens = FALSE, groups = "grade",
       mreg = list(list(name = "length_grade_wic", formula = "~ length + factor(grade) + wic",
                        names_py = c("intrcpt", "length", "grade2", "grade3", "grade4", "wic"),
                        moderators = list(length = "numeric", grade = "factor", wic = "numeric")))),
  list(name = "bcg_mods", setup = BCG,
       source = "metadat dat.bcg (BCG vaccine trials), log risk ratios via escalc(measure=\"RR\"): meta-regression and subgroups",
       sens = FALSE, groups = "alloc",
       mreg = list(list(name = "ablat", formula = "~ ablat", names_py = c("intrcpt", "ablat"),
                        moderators = list(ablat = "numeric")),
                   list(name = "ablat_year_alloc", formula = "~ ablat + year + factor(alloc)",
                        names_py = c("intrcpt", "ablat", "year", "allocrandom", "allocsystematic"),
                        moderators = list(ablat = "numeric", year = "numeric", alloc = "factor"))))
)

rver <- R.version.string
mver <- as.character(packageVersion("metafor"))
for (ds in DATASETS) {
  env <- new.env(parent = globalenv())
  eval(parse(text = ds$setup), envir = env)
  env$dat <- env$dat[!is.na(env$dat$yi) & !is.na(env$dat$vi), ]
  k <- nrow(env$dat)
  fx <- list(dataset = ds$name, source = ds$source, setup_r = ds$setup, r_version = rver, metafor_version = mver,
             metadat_version = as.character(packageVersion("metadat")), control = CTRL, k = k,
             yi = arr(env$dat$yi), vi = arr(env$dat$vi))
  if (isTRUE(ds$sens)) {
    fx$analyses <- list()
    for (method in METHODS) for (test in TESTS) fx$analyses[[length(fx$analyses) + 1]] <- sens_one(env, method, test)
    # cumul() in publication-year order (ties keep input order: R's order() is stable)
    ocall <- sprintf('cumul(rma(yi, vi, data=dat, method="REML", test="knha", level=0.95, control=list(%s)), order=dat$year)', CTRL)
    oc <- run(ocall, env)$value
    tr <- vapply(seq_len(k), function(i) {
      ii <- order(env$dat$year)[seq_len(i)]
      if (i < 2) 0 else true_tau2("REML", env$dat$yi[ii], env$dat$vi[ii], ngrid = 1500)
    }, 0)
    if (any(abs(oc$tau2 - tr) > TOL_OPT * pmax(1, tr))) stop("ordered cumul not at the REML optimum")
    fx$cumul_ordered <- c(list(r_call = ocall, method = "REML", test = "knha", order = arr(env$dat$year)), ROWS(oc))
    rl <- run('regtest(rma(yi, vi, data=dat), model="lm")', env)$value
    fx$regtest_lm <- list(r_call = 'regtest(rma(yi, vi, data=dat), model="lm")  # lm(yi ~ sqrt(vi), weights=1/vi)',
                          stat = rl$zval, pvalue = rl$pval, df = rl$dfs, slope = unname(coef(rl$fit)[2]),
                          intercept = unname(coef(rl$fit)[1]), limit_estimate = unname(rl$est),
                          limit_ci_lower = rl$ci.lb, limit_ci_upper = rl$ci.ub)
  }
  if (!is.null(ds$mreg)) {
    fx$meta_regression <- list()
    for (spec in ds$mreg) {
      mods <- list()
      for (nm in names(spec$moderators)) {
        x <- env$dat[[nm]]
        mods[[nm]] <- if (spec$moderators[[nm]] == "factor") as.list(as.character(x)) else arr(x)
      }
      spec$moderators <- mods
      fx$meta_regression[[length(fx$meta_regression) + 1]] <- mreg_model(env, spec)
    }
  }
  if (!is.null(ds$groups)) {
    fx$subgroups <- list(variable = ds$groups, labels = as.list(as.character(env$dat[[ds$groups]])),
                         groups_in_order = as.list(unique(as.character(env$dat[[ds$groups]]))), fits = list())
    for (method in METHODS) for (test in TESTS)
      fx$subgroups$fits[[length(fx$subgroups$fits) + 1]] <- subgroup_one(env, ds$groups, method, test)
  }
  writeLines(tojson(fx), file.path(fixdir, paste0(ds$name, ".json")))
  cat(sprintf("%-20s k=%-3d\n", ds$name, k))
}
