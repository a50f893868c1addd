# Goldens for tests/test_finegray.py, tests/test_gray.py, and the competing-risks checks of
# tests/test_survival.py and tests/test_coxph.py: R's cmprsk (crr, predict.crr, cuminc) and
# survival (coxph with Efron ties) on seeded data with tied times.
#
# Regenerate (from the repository root; needs r-base-core, r-cran-survival, r-cran-cmprsk):
#   Rscript tests/golden/make_golden.R [output folder, default tests/golden]
# Writes, in that folder:
#   competing_data.csv    the data: time (whole weeks, many ties), status (0 open/censored,
#                         1 won, 2 lost), x (numeric), referral (0/1), size (0/1), group (a, b, c),
#                         stratum (1, 2)
#   crr.csv               crr(time, status, cbind(x, referral, size)) coefficients, robust and naive
#                         SEs, log pseudo-likelihoods (gtol = 1e-8: crr stalls there, its score about 1e-6)
#   crr_predict.csv       predict.crr for two profiles at every distinct time of a win
#   cuminc_tests.csv      Gray's test by group, for cause 1 and 2, without and with strata
#   cuminc_curves.csv     cuminc estimates and variances of both causes (no groups)
#   survfit_states.csv    survfit(Surv(time, factor(status)) ~ 1) multi-state Aalen-Johansen at every
#                         distinct time: at risk, state probabilities of both causes and their
#                         standard errors (the infinitesimal jackknife of survival 3.x)
#   coxph_efron.csv       coxph(ties = "efron") of the cause-specific hazard of status 1
suppressPackageStartupMessages({library(survival); library(cmprsk)})
args <- commandArgs(trailingOnly = TRUE)
here <- if (length(args)) args[1] else if (dir.exists("tests/golden")) "tests/golden" else "."
write <- function(frame, name) write.csv(frame, file.path(here, name), row.names = FALSE)

set.seed(20261202)
n <- 400
x <- round(rnorm(n), 3)
referral <- as.numeric(runif(n) < 0.3)
size <- as.numeric(runif(n) < 0.5)
group <- sample(c("a", "b", "c"), n, replace = TRUE, prob = c(0.5, 0.3, 0.2))
stratum <- sample(1:2, n, replace = TRUE)
# Fine & Gray's (1999) design: P(win | x) = 1 - (1 - p)^exp(eta); time given the cause.
eta <- 0.5 * x + 0.6 * referral - 0.3 * size + ifelse(group == "c", 0.4, 0)
p <- 0.5
win_prob <- 1 - (1 - p)^exp(eta)
won <- runif(n) < win_prob
u <- runif(n)
t_win <- -log(1 - (1 - (1 - u * win_prob)^(1 / exp(eta))) / p)
t_loss <- rexp(n, rate = exp(0.3 * x))
event_time <- ifelse(won, t_win, t_loss)
open_at <- runif(n, 0, 3)                     # age at the cut-off: about a quarter open
time <- ceiling(pmin(event_time, open_at) * 20)   # whole weeks: many ties
status <- ifelse(event_time <= open_at, ifelse(won, 1, 2), 0)
data <- data.frame(time = time, status = status, x = x, referral = referral, size = size,
                   group = group, stratum = stratum)
write(data, "competing_data.csv")

covs <- cbind(x = x, referral = referral, size = size)
fit <- crr(time, status, covs, gtol = 1e-8, maxiter = 100)
write(data.frame(covariate = names(fit$coef), coef = unname(fit$coef), se = sqrt(diag(fit$var)),
                 naive_se = sqrt(diag(fit$invinf)), loglik = fit$loglik, loglik_null = fit$loglik.null,
                 converged = fit$converged), "crr.csv")
profiles <- rbind(c(0, 0, 0), c(1, 1, 0))
pred <- predict(fit, profiles)
write(data.frame(time = pred[, 1], cif_profile1 = pred[, 2], cif_profile2 = pred[, 3],
                 jump = fit$bfitj), "crr_predict.csv")

tests <- list()
for (with_strata in c(FALSE, TRUE)) {
  ci <- if (with_strata) cuminc(time, status, group, strata = stratum) else cuminc(time, status, group)
  tab <- ci$Tests
  tests[[length(tests) + 1]] <- data.frame(strata = with_strata, cause = as.integer(rownames(tab)),
                                           stat = tab[, "stat"], pv = tab[, "pv"], df = tab[, "df"])
}
write(do.call(rbind, tests), "cuminc_tests.csv")

ci <- cuminc(time, status)
curves <- list()
for (cause in 1:2) {
  curve <- ci[[paste("1", cause)]]
  curves[[cause]] <- data.frame(cause = cause, time = curve$time, est = curve$est, var = curve$var)
}
write(do.call(rbind, curves), "cuminc_curves.csv")

states <- survfit(Surv(time, factor(status)) ~ 1)
write(data.frame(time = states$time, n_risk = states$n.risk[, 1], pstate_1 = states$pstate[, 2],
                 pstate_2 = states$pstate[, 3], std_err_1 = states$std.err[, 2],
                 std_err_2 = states$std.err[, 3]), "survfit_states.csv")

cox <- coxph(Surv(time, status == 1) ~ x + referral + size, ties = "efron")
write(data.frame(covariate = names(coef(cox)), coef = unname(coef(cox)), se = sqrt(diag(vcov(cox))),
                 loglik = cox$loglik[2]), "coxph_efron.csv")
