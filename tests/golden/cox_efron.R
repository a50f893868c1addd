# Goldens for tests/test_coxph.py: R's survival::coxph (ties = "efron") on tied data with a
# level that has no event, unpenalized and Firth-penalized.
#
# Regenerate (from the repository root; needs r-base-core and r-cran-survival):
#   Rscript tests/golden/cox_efron.R
# Writes tests/golden/cox_efron_data.csv (the data) and tests/golden/cox_efron.csv (the numbers).
# Debian has no coxphf, so the Firth estimate maximises loglik + 1/2 log det(information) with
# optim(), both taken from coxph(init = b, iter.max = 0): an independent implementation of the
# Efron partial likelihood and its information.
suppressPackageStartupMessages(library(survival))
set.seed(20250630)
n <- 240
x <- rnorm(n)
common <- as.numeric(runif(n) < 0.3)
none <- as.numeric(runif(n) < 0.15)                 # a level with no event
t <- ceiling(rexp(n, rate = exp(0.5 * x - 0.4 * common) / 60) / 7)   # weeks: many ties
e <- as.numeric(runif(n) < 0.7 & none == 0)
data <- data.frame(t = t, e = e, x = x, common = common, none = none)
here <- if (dir.exists("tests/golden")) "tests/golden" else "."
write.csv(data, file.path(here, "cox_efron_data.csv"), row.names = FALSE)

rows <- list()
plain <- coxph(Surv(t, e) ~ x + common, data = data, ties = "efron")
rows[[1]] <- data.frame(fit = "efron", covariate = c("x", "common"), coef = unname(coef(plain)),
                        se = unname(sqrt(diag(vcov(plain)))), loglik = plain$loglik[2])

at <- function(b) {
  f <- suppressWarnings(coxph(Surv(t, e) ~ x + common + none, data = data, ties = "efron", init = b,
                              control = coxph.control(iter.max = 0)))
  list(loglik = f$loglik[2], info = solve(f$var))
}
penalized <- function(b) {
  a <- at(b)
  d <- determinant(a$info, logarithm = TRUE)
  if (d$sign <= 0) return(-1e10)
  a$loglik + 0.5 * as.numeric(d$modulus)
}
best <- optim(c(0, 0, 0), function(b) -penalized(b), method = "Nelder-Mead",
              control = list(reltol = 1e-14, maxit = 20000))
best <- optim(best$par, function(b) -penalized(b), method = "BFGS", control = list(reltol = 1e-16, maxit = 1000, ndeps = rep(1e-5, 3)))
se <- sqrt(diag(solve(at(best$par)$info)))
rows[[2]] <- data.frame(fit = "firth", covariate = c("x", "common", "none"), coef = best$par, se = se,
                        loglik = -best$value)
write.csv(do.call(rbind, rows), file.path(here, "cox_efron.csv"), row.names = FALSE)
