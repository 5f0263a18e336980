// parley: composer.
"use strict";
