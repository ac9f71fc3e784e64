/* version.h: the one place the version of calypso-purse is written. purse._VERSION and the
 * User-Agent (calypso-purse/<version>) come from it; the Makefile reads it (make version) and
 * scripts/check-release.sh holds the release rockspecs and CHANGELOG.md to it. */
#ifndef CALYPSO_VERSION_H
#define CALYPSO_VERSION_H

#define CALYPSO_VERSION "0.2.0"

#endif
